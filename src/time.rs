//! Unix seconds in human form: civil dates (the access log's timestamps),
//! RFC 3339 UTC and "in 5 min" / "3 h ago" (`inspect`). A module of its own
//! at the bottom of the graph: the clock type itself, `UnixTime`, is the
//! engine's.

/// `2023-11-14T22:13:20Z` for Unix seconds (proleptic Gregorian, UTC).
pub(crate) fn rfc3339(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Year, month and day of the day `days` after 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// `in 59 min`, `3 h ago`, `now` for `seconds` relative to `now`.
pub(crate) fn relative(seconds: i64, now: i64) -> String {
    let delta = seconds.saturating_sub(now);
    let magnitude = delta.unsigned_abs();
    let amount = match magnitude {
        0 => return "now".to_owned(),
        1..=119 => format!("{magnitude} s"),
        120..=7199 => format!("{} min", magnitude / 60),
        7200..=172_799 => format!("{} h", magnitude / 3600),
        172_800..=63_071_999 => format!("{} days", magnitude / 86_400),
        _ => format!("{} years", magnitude / 31_557_600),
    };
    if delta > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(130, 100), "in 30 s");
        assert_eq!(relative(100, 3700), "60 min ago");
        assert_eq!(relative(100 + 3 * 86_400, 100), "in 3 days");
    }
}
