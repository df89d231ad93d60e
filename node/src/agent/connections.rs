//! The TCP connections of the agent's network namespace (the node's too, in
//! holder mode), read from `/proc/net/tcp` and `/proc/net/tcp6`: how the
//! orchestrator sees the links of a node that does not report its peers.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::api::agent::{Connection, Connections};

/// `/proc/net/tcp`'s state code of an established connection.
const ESTABLISHED: &str = "01";
const LISTEN: &str = "0A";

/// `0100007F:1F40` (IPv4) or the 32-hex-digit IPv6 form; IPv6 only when it
/// maps an IPv4 address (`::ffff:a.b.c.d`). Words are in host byte order.
fn parse_addr(s: &str) -> Option<SocketAddrV4> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|w| Ipv4Addr::from(w.to_ne_bytes()))
    };
    let ip = match ip.len() {
        8 => word(ip)?,
        32 => {
            let words: Vec<u32> = (0..4)
                .map(|k| u32::from_str_radix(&ip[8 * k..8 * k + 8], 16).ok())
                .collect::<Option<_>>()?;
            let mapped =
                words[0] == 0 && words[1] == 0 && words[2].to_ne_bytes() == [0, 0, 255, 255];
            if !mapped {
                return None;
            }
            Ipv4Addr::from(words[3].to_ne_bytes())
        }
        _ => return None,
    };
    Some(SocketAddrV4::new(ip, port))
}

/// Adds the table's established connections and listening ports to `out`.
pub fn parse_table(text: &str, out: &mut Connections) {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let (Some(local), Some(remote)) = (parse_addr(local), parse_addr(remote)) else {
            continue;
        };
        match *state {
            ESTABLISHED => out.established.push(Connection { local, remote }),
            LISTEN => out.listening.push(local.port()),
            _ => {}
        }
    }
}

/// This namespace's connections now.
pub fn read() -> Connections {
    let mut out = Connections::default();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            parse_table(&text, &mut out);
        }
    }
    out.listening.sort_unstable();
    out.listening.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_in_both_families() {
        // 10.77.0.10:2380 <- 10.77.0.11:41000 established; 2379 listening;
        // a v4-mapped v6 connection; a pure v6 one left out; a garbage line.
        let ip = |a: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(a));
        let v4 = format!(
            "  sl  local_address rem_address   st\n\
             0: {}:094C {}:A028 01 0 0\n\
             1: {}:094B 00000000:0000 0A 0 0\n\
             2: nonsense\n",
            ip([10, 77, 0, 10]),
            ip([10, 77, 0, 11]),
            ip([0, 0, 0, 0]),
        );
        let mapped = |a: [u8; 4]| {
            format!(
                "0000000000000000{:08X}{}",
                u32::from_ne_bytes([0, 0, 255, 255]),
                ip(a)
            )
        };
        let v6 = format!(
            "  sl  local_address rem_address st\n\
             0: {}:094C {}:B000 01 0 0\n\
             1: 20010DB8000000000000000000000001:094C 20010DB8000000000000000000000002:B000 01\n",
            mapped([10, 77, 0, 10]),
            mapped([10, 77, 0, 12]),
        );
        let mut c = Connections::default();
        parse_table(&v4, &mut c);
        parse_table(&v6, &mut c);
        let remotes: Vec<String> = c.established.iter().map(|e| e.remote.to_string()).collect();
        assert_eq!(remotes, ["10.77.0.11:41000", "10.77.0.12:45056"]);
        assert_eq!(c.established[0].local.to_string(), "10.77.0.10:2380");
        assert_eq!(c.listening, [2379]);
    }
}
