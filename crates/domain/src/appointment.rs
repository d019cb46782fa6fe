//! Reading the date and time a caller asked for, as the agent wrote them down.
//!
//! The agent fills `datum` / `uhrzeit` in German notation (`15.04.2025`, `14:30`, sometimes
//! `14 Uhr`). They are local times of the branch, so they are read in its time zone. Anything
//! not understood gives None: the caller's words stay in the event as raw strings, and a wrong
//! guess would be worse than no instant.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a caller asked for, or None when date or time is missing or not understood,
/// or the local time does not exist (the hour skipped when clocks go forward).
pub fn requested_start(
    date: Option<&str>,
    time: Option<&str>,
    time_zone: Tz,
) -> Option<DateTime<Utc>> {
    let date = parse_date(date?)?;
    let time = parse_time(time?)?;
    match time_zone.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
        // When clocks go back the hour repeats; people mean the first one.
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// `15.04.2025`, `5.4.2025` or ISO `2025-04-15`. A two-digit or missing year is refused
/// rather than guessed.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    let parts: Vec<&str> = raw.split('.').collect();
    if let [day, month, year] = parts.as_slice() {
        if !(is_digits(day, 1..=2) && is_digits(month, 1..=2) && is_digits(year, 4..=4)) {
            return None;
        }
        return NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    }
    let parts: Vec<&str> = raw.split('-').collect();
    if let [year, month, day] = parts.as_slice() {
        if !(is_digits(year, 4..=4) && is_digits(month, 2..=2) && is_digits(day, 2..=2)) {
            return None;
        }
        return NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    }
    None
}

/// `14:30`, `14.30`, `9:05`, `14:30 Uhr`, `14 Uhr`.
pub fn parse_time(raw: &str) -> Option<NaiveTime> {
    let mut raw = raw.trim();
    // `get` rather than indexing: the input is free text and may end in a multi-byte char.
    let suffix_start = raw.len().saturating_sub(3);
    if raw
        .get(suffix_start..)
        .is_some_and(|suffix| suffix.eq_ignore_ascii_case("uhr"))
    {
        raw = raw[..suffix_start].trim_end();
    }
    let (hour, minute) = match raw.split_once([':', '.']) {
        Some((hour, minute)) => (hour, minute),
        None => (raw, "00"),
    };
    if !(is_digits(hour, 1..=2) && is_digits(minute, 2..=2)) {
        return None;
    }
    NaiveTime::from_hms_opt(hour.parse().ok()?, minute.parse().ok()?, 0)
}

fn is_digits(s: &str, length: std::ops::RangeInclusive<usize>) -> bool {
    length.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe};

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_seed_example_is_half_past_two_in_berlin_summer_time() {
        assert_eq!(
            requested_start(Some("15.04.2025"), Some("14:30"), Europe::Berlin),
            Some(utc("2025-04-15T12:30:00Z"))
        );
    }

    #[test]
    fn winter_dates_use_the_winter_offset() {
        assert_eq!(
            requested_start(Some("15.01.2025"), Some("14:30"), Europe::Berlin),
            Some(utc("2025-01-15T13:30:00Z"))
        );
    }

    #[test]
    fn the_branch_time_zone_decides() {
        assert_eq!(
            requested_start(Some("15.04.2025"), Some("14:30"), America::New_York),
            Some(utc("2025-04-15T18:30:00Z"))
        );
    }

    #[test]
    fn spoken_variants_are_understood() {
        let at = |date, time| requested_start(Some(date), Some(time), Europe::Berlin);
        let expected = Some(utc("2025-04-05T07:00:00Z"));
        assert_eq!(at("5.4.2025", "9 Uhr"), expected);
        assert_eq!(at("05.04.2025", "09:00 Uhr"), expected);
        assert_eq!(at("2025-04-05", "9.00"), expected);
        assert_eq!(at(" 05.04.2025 ", "9:00uhr"), expected);
    }

    #[test]
    fn what_is_not_understood_gives_no_instant() {
        let at = |date, time| requested_start(Some(date), Some(time), Europe::Berlin);
        assert_eq!(at("15.04.", "14:30"), None, "no year");
        assert_eq!(
            at("15.04.25", "14:30"),
            None,
            "two-digit year is not guessed"
        );
        assert_eq!(at("morgen", "14:30"), None);
        assert_eq!(at("31.02.2025", "14:30"), None);
        assert_eq!(at("15.04.2025", "nachmittags"), None);
        assert_eq!(at("15.04.2025", "25:00"), None);
        assert_eq!(at("15.04.2025", "14:3"), None);
        assert_eq!(
            at("15.04.2025", "14 Ühr"),
            None,
            "non-ASCII text does not panic"
        );
        assert_eq!(requested_start(None, Some("14:30"), Europe::Berlin), None);
        assert_eq!(
            requested_start(Some("15.04.2025"), None, Europe::Berlin),
            None
        );
    }

    #[test]
    fn the_skipped_hour_does_not_exist_and_the_repeated_hour_is_the_first() {
        let at = |date, time| requested_start(Some(date), Some(time), Europe::Berlin);
        assert_eq!(at("30.03.2025", "02:30"), None);
        assert_eq!(at("26.10.2025", "02:30"), Some(utc("2025-10-26T00:30:00Z")));
    }
}
