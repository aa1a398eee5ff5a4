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

/// Unix seconds of a civil date and time in UTC; `None` unless it names a
/// real instant between 1970 and 9999 (no 31 February, no hour 24). A leap
/// second (`:60`) counts as the second after.
pub(crate) fn unix_from_civil(
    (year, month, day): (i64, i64, i64),
    (hour, minute, second): (i64, i64, i64),
) -> Option<i64> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    // A day past the month's end would roll into the next month.
    (civil_from_days(days) == (year, month, day))
        .then_some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// `text` as an instant: Unix seconds, or RFC 3339 (`2026-12-06T10:00:00Z`,
/// `2026-12-06T11:00:00+01:00`). A fraction of a second counts as the whole
/// second after it: a revocation's cut-off or end is never moved earlier,
/// which would let through a token it names.
pub(crate) fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim_ascii();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok();
    }
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let (time, offset) = if let Some(time) = time.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (time, offset) = time.split_at(at);
        (time, offset_seconds(offset)?)
    };
    let mut date = date.splitn(3, '-');
    let civil_date = (
        digits(date.next()?, 4)?,
        digits(date.next()?, 2)?,
        digits(date.next()?, 2)?,
    );
    let (whole, fraction) = time.split_once('.').unwrap_or((time, "0"));
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part_second = i64::from(fraction.bytes().any(|b| b != b'0'));
    let mut clock = whole.splitn(3, ':');
    let civil_time = (
        digits(clock.next()?, 2)?,
        digits(clock.next()?, 2)?,
        digits(clock.next()?, 2)?,
    );
    let local = unix_from_civil(civil_date, civil_time)?;
    Some(local - offset + part_second).filter(|seconds| *seconds >= 0)
}

/// `+01:00` as 3600, `-05:30` as -19800.
fn offset_seconds(text: &str) -> Option<i64> {
    let (sign, hours_minutes) = match text.split_at_checked(1)? {
        ("+", rest) => (1, rest),
        ("-", rest) => (-1, rest),
        _ => return None,
    };
    let (hours, minutes) = hours_minutes.split_once(':')?;
    let (hours, minutes) = (digits(hours, 2)?, digits(minutes, 2)?);
    (hours < 24 && minutes < 60).then_some(sign * (hours * 3_600 + minutes * 60))
}

/// A field of exactly `width` ASCII digits (no sign, no spaces).
fn digits(text: &str, width: usize) -> Option<i64> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
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
    fn reads_instants_and_refuses_what_is_not_one() {
        assert_eq!(parse_instant("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_instant("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_instant("2023-11-14T22:13:19.5+00:00"),
            Some(1_700_000_000),
            "a fraction counts as the second after"
        );
        assert_eq!(
            parse_instant("2023-11-14T22:13:20.000Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_instant("2023-11-14T23:43:20+01:30"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_instant("2023-11-14T17:13:20-05:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for wrong in [
            "",
            "-5",
            "+1700000000",
            " 1700000000\u{a0}",
            "2023-11-14T22:13:20",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+1:00",
            "+2024-01-01T00:00:00Z",
            "1970-01-01T00:30:00+01:00",
            "tomorrow",
        ] {
            assert_eq!(parse_instant(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in (0..2_932_896).step_by(997) {
            let date = civil_from_days(days);
            assert_eq!(unix_from_civil(date, (0, 0, 0)), Some(days * 86_400));
        }
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(130, 100), "in 30 s");
        assert_eq!(relative(100, 3700), "60 min ago");
        assert_eq!(relative(100 + 3 * 86_400, 100), "in 3 days");
    }
}
