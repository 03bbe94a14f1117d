//! Human sizes for options: `1000M`, `2G`, `512K`, or bare bytes, in binary multiples as nginx
//! reads them (the seed's `MAX_CHUNK_SIZE=1000M` means 1000 MiB).

/// Parses `1000M`, `2G`, `512K`, `1048576` (bytes).
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("{text:?}: unknown size suffix (use K, M, G or T)")),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: not a size (e.g. 1000M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?}: size too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("1000M").unwrap(), 1000 << 20);
        assert_eq!(parse("2g").unwrap(), 2 << 30);
        assert_eq!(parse("4096").unwrap(), 4096);
        assert!(parse("12Q").is_err());
        assert!(parse("M").is_err());
    }
}
