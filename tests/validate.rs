//! Malformed workflows: each rejected with exit 2 and its file:line (being written).
