//! Which peers may speak for the client: forwarded headers (`X-Original-URI`,
//! `X-Forwarded-Host`, ...) decide routing and exclusions, so they are only
//! believed from the proxies listed in `trusted_proxies`, as addresses or
//! CIDR blocks. An empty list trusts every peer (jwtgate on loopback or a
//! private network behind its proxy).

use std::net::IpAddr;

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    network: IpAddr,
    prefix: u8,
}

/// Why an address block is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected an IP address or CIDR block such as \"10.0.0.0/8\" or \"::1\"")]
pub struct IpNetError;

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl IpNet {
    /// Parses `10.0.0.0/8` or a bare address.
    pub fn parse(text: &str) -> Result<IpNet, IpNetError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| IpNetError)?;
        let network = network.to_canonical();
        let (_, width) = bits(network);
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().map_err(|_| IpNetError)?,
            None => width,
        };
        if prefix > width {
            return Err(IpNetError);
        }
        Ok(IpNet { network, prefix })
    }

    /// Whether `ip` is in the block (IPv4-mapped IPv6 peers count as IPv4).
    /// The block's first address (its network address).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (network, width) = bits(self.network);
        let (address, address_width) = bits(ip);
        if width != address_width {
            return false;
        }
        let host_bits = u32::from(width - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        (network & mask) == (address & mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_addresses() {
        let private = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(private.contains("10.1.2.3".parse().unwrap()));
        assert!(private.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!private.contains("11.0.0.1".parse().unwrap()));
        assert!(!private.contains("::1".parse().unwrap()));
        let loopback = IpNet::parse("127.0.0.1").unwrap();
        assert!(loopback.contains("127.0.0.1".parse().unwrap()));
        assert!(!loopback.contains("127.0.0.2".parse().unwrap()));
        let everything = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(everything.contains("203.0.113.9".parse().unwrap()));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert_eq!(IpNet::parse(bad), Err(IpNetError), "{bad}");
        }
    }
}
