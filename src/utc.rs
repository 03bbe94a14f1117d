//! UTC civil time without a time-zone library: chunk names and metadata only ever need UTC.

/// A UTC instant split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    pub fn from_unix_millis(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let millis = ms.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: (sod / 60 % 60) as u32,
            second: (sod % 60) as u32,
            millis,
        }
    }

    pub fn to_unix_millis(&self) -> i64 {
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        ((days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second))
            * 1000)
            + i64::from(self.millis)
    }

    /// `20261126T032759.123Z`: fixed width, sorts as text in time order.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// Parses [`Civil::compact`]'s form back.
    pub fn parse_compact(s: &str) -> Option<Civil> {
        let b = s.as_bytes();
        if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
            return None;
        }
        let c = Civil::from_digits(s, [0, 4, 6, 9, 11, 13], digits(s, 16..19)?)?;
        c.in_range(59).then_some(c)
    }

    /// Parses an RFC 3339 timestamp (`2026-11-26T14:03:10Z`, `...10.250Z`, `...10+01:00`) into
    /// Unix milliseconds; fractions past the millisecond are cut. `t` or a space may stand for `T`.
    pub fn parse_rfc3339_millis(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let num = |r| digits(s, r);
        let mut at = 19;
        let mut millis = 0u32;
        if b[at] == b'.' {
            let digits = b[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits == 0 {
                return None;
            }
            let frac = &s[at + 1..at + 1 + digits.min(3)];
            millis = frac.parse::<u32>().ok()? * 10u32.pow(3 - frac.len() as u32);
            at += 1 + digits;
        }
        let offset_min: i64 = match s.get(at..)? {
            "Z" | "z" => 0,
            tz if tz.len() == 6 && tz.as_bytes()[3] == b':' => {
                let sign = match tz.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
                if h > 23 || m > 59 {
                    return None;
                }
                sign * i64::from(h * 60 + m)
            }
            _ => return None,
        };
        let c = Civil::from_digits(s, [0, 5, 8, 11, 14, 17], millis)?;
        // RFC 3339 allows a leap second (:60); chunk names never carry one.
        c.in_range(60)
            .then(|| c.to_unix_millis() - offset_min * 60_000)
    }

    /// The time whose year (4 digits), month, day, hour, minute and second (2 digits each)
    /// stand in `s` at the offsets `at`; unchecked (see [`Civil::in_range`]).
    fn from_digits(s: &str, at: [usize; 6], millis: u32) -> Option<Civil> {
        let two = |i: usize| digits(s, at[i]..at[i] + 2);
        Some(Civil {
            year: i64::from(digits(s, at[0]..at[0] + 4)?),
            month: two(1)?,
            day: two(2)?,
            hour: two(3)?,
            minute: two(4)?,
            second: two(5)?,
            millis,
        })
    }

    /// Month, day and time of day within their ranges, seconds up to `max_second`.
    fn in_range(&self, max_second: u32) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second <= max_second
    }

    /// RFC 3339 with milliseconds, for metadata and manifests.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

/// The decimal number in `s[r]`, digits only.
fn digits(s: &str, r: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(r)?;
    if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let c = Civil::from_unix_millis(0);
        assert_eq!(c.compact(), "19700101T000000.000Z");
        // 2024-02-29T23:59:59.999Z, a leap day.
        let c = Civil::from_unix_millis(1_709_251_199_999);
        assert_eq!(c.rfc3339(), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn round_trips_across_years() {
        let mut ms: i64 = 0;
        while ms < 4_102_444_800_000 {
            let c = Civil::from_unix_millis(ms);
            assert_eq!(c.to_unix_millis(), ms);
            assert_eq!(Civil::parse_compact(&c.compact()), Some(c));
            ms += 86_400_000 * 37 + 3_723_456;
        }
    }

    #[test]
    fn rfc3339_reads_what_manifests_write_and_what_people_type() {
        let c = Civil::from_unix_millis(1_764_166_990_250);
        assert_eq!(
            Civil::parse_rfc3339_millis(&c.rfc3339()),
            Some(1_764_166_990_250)
        );
        let z = Civil::parse_rfc3339_millis("2026-11-26T14:03:10Z").unwrap();
        assert_eq!(
            Civil::from_unix_millis(z).rfc3339(),
            "2026-11-26T14:03:10.000Z"
        );
        assert_eq!(
            Civil::parse_rfc3339_millis("2026-11-26T15:03:10+01:00"),
            Some(z)
        );
        assert_eq!(
            Civil::parse_rfc3339_millis("2026-11-26T09:03:10-05:00"),
            Some(z)
        );
        assert_eq!(
            Civil::parse_rfc3339_millis("2026-11-26T14:03:10.123456Z"),
            Some(z + 123)
        );
        assert_eq!(
            Civil::parse_rfc3339_millis("2026-11-26T14:03:10.5Z"),
            Some(z + 500)
        );
        for bad in [
            "2026-11-26",
            "2026-11-26T14:03:10",
            "2026-13-26T14:03:10Z",
            "2026-11-26T14:03:10.Z",
            "2026-11-26T14:03:10+0100",
            "2026-11-26X14:03:10Z",
        ] {
            assert_eq!(Civil::parse_rfc3339_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_malformed_compact() {
        assert_eq!(Civil::parse_compact("20261126T032759.123"), None);
        assert_eq!(Civil::parse_compact("20261326T032759.123Z"), None);
        assert_eq!(Civil::parse_compact("2026112xT032759.123Z"), None);
    }
}
