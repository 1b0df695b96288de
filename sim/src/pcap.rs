//! Small, valid libpcap files: the global header and, when the scenario says
//! packets reach the node, the client's TCP SYN and its retransmissions with
//! no answer (what "SYN in, nothing out" looks like in Wireshark).

use std::net::Ipv4Addr;

/// One unanswered connection attempt to capture.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub client: Ipv4Addr,
    pub server: Ipv4Addr,
    pub port: u16,
    /// Seconds since the epoch of the first SYN.
    pub start: u32,
}

/// A pcap file with Ethernet framing: empty, or the SYN of each attempt sent three times (0 s, 1 s, 3 s).
pub fn capture(attempts: &[Attempt]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microsecond timestamps
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (index, attempt) in attempts.iter().enumerate() {
        let source_port = 50_000 + index as u16;
        for offset in [0u32, 1, 3] {
            let frame = syn_frame(attempt, source_port);
            out.extend_from_slice(&(attempt.start + offset).to_le_bytes());
            out.extend_from_slice(&(index as u32 * 1000).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
    }
    out
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn syn_frame(attempt: &Attempt, source_port: u16) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&source_port.to_be_bytes());
    tcp.extend_from_slice(&attempt.port.to_be_bytes());
    tcp.extend_from_slice(&0x1d2c_3b4au32.to_be_bytes()); // sequence number
    tcp.extend_from_slice(&0u32.to_be_bytes()); // acknowledgement
    tcp.push(5 << 4); // data offset: 20 bytes
    tcp.push(0x02); // SYN
    tcp.extend_from_slice(&64_240u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&attempt.client.octets());
    pseudo.extend_from_slice(&attempt.server.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&tcp);
    let tcp_sum = checksum(&pseudo);
    tcp[16..18].copy_from_slice(&tcp_sum.to_be_bytes());

    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x3c, 0x1d, 0x40, 0]); // identification, don't fragment
    ip.extend_from_slice(&[57, 6, 0, 0]); // TTL, protocol TCP, checksum
    ip.extend_from_slice(&attempt.client.octets());
    ip.extend_from_slice(&attempt.server.octets());
    let ip_sum = checksum(&ip);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let mut frame = vec![0x00, 0x0d, 0x3a, 0x5e, 0x21, 0x07, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_capture_is_just_the_global_header() {
        let file = capture(&[]);
        assert_eq!(file.len(), 24);
        assert_eq!(&file[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    }

    #[test]
    fn syn_records_have_valid_checksums() {
        let attempt = Attempt {
            client: Ipv4Addr::new(203, 0, 113, 25),
            server: Ipv4Addr::new(127, 0, 0, 20),
            port: 80,
            start: 1_700_000_000,
        };
        let file = capture(&[attempt]);
        assert_eq!(file.len(), 24 + 3 * (16 + 54));
        let frame = &file[24 + 16..24 + 16 + 54];
        assert_eq!(checksum(&frame[14..34]), 0, "IPv4 header checksum");
        assert_eq!(frame[14 + 20 + 13], 0x02, "SYN flag");
        assert_eq!(u16::from_be_bytes([frame[36], frame[37]]), 80);
    }
}
