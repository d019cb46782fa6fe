//! Retell's `check_availability`: is the requested slot free for that staff member, and if
//! not, which slots nearby are. Pure: the handler gathers the booked appointments and the
//! branch's opening hours and passes the current time.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use switchboard_domain::event::{
    AvailabilityAnswer as Answer, AvailableSlot as Slot, OpeningHours as RegisteredHours,
};

/// Opening hours of a branch, per weekday, in the branch's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct OpeningHours {
    pub time_zone: Tz,
    /// Monday first; None is closed.
    pub days: [Option<(NaiveTime, NaiveTime)>; 7],
}

impl OpeningHours {
    /// A branch's week as registered (one interval per listed day; unlisted days closed),
    /// read in `time_zone`.
    pub fn weekly(time_zone: Tz, intervals: &[RegisteredHours]) -> Self {
        let mut days = [None; 7];
        for interval in intervals {
            days[interval.day as usize] = Some((interval.opens, interval.closes));
        }
        OpeningHours { time_zone, days }
    }

    fn on(&self, day: Weekday) -> Option<(NaiveTime, NaiveTime)> {
        self.days[day.num_days_from_monday() as usize]
    }
}

/// An appointment that occupies a staff member.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// None: the booking names no staff member, so it blocks everyone.
    pub staff: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub date: NaiveDate,
    pub time: Option<NaiveTime>,
    pub duration: Duration,
    pub staff: Option<String>,
}

/// How many alternatives to offer when the requested slot is taken.
const ALTERNATIVES: usize = 3;
/// How far ahead to look for alternatives.
const SEARCH_DAYS: i64 = 7;

/// The answer in the seed's shape, `{"available", "slots", "message"}`.
pub fn check(request: &Request, busy: &[Busy], hours: &OpeningHours, now: DateTime<Utc>) -> Answer {
    let tz = hours.time_zone;
    let duration = if request.duration > Duration::zero() {
        request.duration
    } else {
        Duration::minutes(30)
    };
    let is_free = |start: DateTime<Utc>| {
        let end = start + duration;
        start >= now
            && busy.iter().all(|b| {
                let same_staff = match (&b.staff, &request.staff) {
                    (Some(booked), Some(wanted)) => same_person(booked, wanted),
                    _ => true,
                };
                !same_staff || end <= b.start || start >= b.end
            })
    };
    let within_hours = |start: DateTime<Utc>| {
        let local_start = start.with_timezone(&tz);
        let local_end = (start + duration).with_timezone(&tz);
        match hours.on(local_start.weekday()) {
            Some((open, close)) => {
                local_start.date_naive() == local_end.date_naive()
                    && local_start.time() >= open
                    && local_end.time() <= close
            }
            None => false,
        }
    };
    let slot = |start: DateTime<Utc>| Slot {
        start: start.with_timezone(&tz).fixed_offset(),
        end: (start + duration).with_timezone(&tz).fixed_offset(),
        staff: request.staff.clone(),
    };

    if let Some(time) = request.time
        && let Some(start) = local_instant(tz, request.date, time)
        && within_hours(start)
        && is_free(start)
    {
        return Answer {
            available: true,
            slots: vec![slot(start)],
            message: "Der Termin ist verfügbar".to_owned(),
        };
    }

    // Alternatives: walk forward from the requested time (or opening) in steps of the
    // duration, over the requested day and the following week.
    let mut slots = Vec::new();
    'days: for offset in 0..SEARCH_DAYS {
        let date = request.date + Duration::days(offset);
        let Some((open, close)) = hours.on(date.weekday()) else {
            continue;
        };
        let from = match (offset, request.time) {
            (0, Some(time)) if time > open => time,
            _ => open,
        };
        let (Some(mut start), Some(closing)) = (
            local_instant(tz, date, from),
            local_instant(tz, date, close),
        ) else {
            continue;
        };
        while start + duration <= closing {
            if within_hours(start) && is_free(start) {
                slots.push(slot(start));
                if slots.len() == ALTERNATIVES {
                    break 'days;
                }
            }
            start += duration;
        }
    }
    let message = if slots.is_empty() {
        "Leider ist in den nächsten Tagen kein Termin frei".to_owned()
    } else if request.time.is_some() {
        "Der gewünschte Termin ist nicht verfügbar; alternative Termine sind frei".to_owned()
    } else {
        "Diese Termine sind frei".to_owned()
    };
    Answer {
        available: false,
        slots,
        message,
    }
}

/// Whether a booked staff name ("Marie Schmidt", from Cal.com) is the person a caller asked
/// for ("Marie", as the agent heard it): the same name, or one of its words.
fn same_person(booked: &str, wanted: &str) -> bool {
    let wanted = wanted.trim().to_lowercase();
    let booked = booked.trim().to_lowercase();
    booked == wanted || booked.split_whitespace().any(|word| word == wanted)
}

/// A UTC instant safely before `date` starts in any time zone a branch may be in: the window
/// of appointments to consider when answering for that day.
pub fn day_start_utc(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)) - Duration::days(1)
}

/// A wall-clock time in `tz`; for a time skipped by a DST change, None.
fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The week a branch gets when it registered none (the read models' default).
    fn default_week() -> OpeningHours {
        OpeningHours::weekly(
            chrono_tz::Europe::Berlin,
            &switchboard_projections::default_opening_hours(),
        )
    }

    fn at(date: &str, time: &str) -> DateTime<Utc> {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let time = NaiveTime::parse_from_str(time, "%H:%M").unwrap();
        local_instant(chrono_tz::Europe::Berlin, date, time).unwrap()
    }

    fn request(date: &str, time: &str, staff: Option<&str>) -> Request {
        Request {
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            time: Some(NaiveTime::parse_from_str(time, "%H:%M").unwrap()),
            duration: Duration::minutes(30),
            staff: staff.map(str::to_owned),
        }
    }

    fn long_ago() -> DateTime<Utc> {
        at("2025-01-01", "00:00")
    }

    #[test]
    fn a_free_slot_within_opening_hours_is_available_in_the_seed_shape() {
        // 2025-04-15 is a Tuesday.
        let answer = check(
            &request("2025-04-15", "14:30", Some("Marie")),
            &[],
            &default_week(),
            long_ago(),
        );
        assert!(answer.available);
        assert_eq!(
            answer.slots[0].start.to_rfc3339(),
            "2025-04-15T14:30:00+02:00"
        );
        assert_eq!(
            answer.slots[0].end.to_rfc3339(),
            "2025-04-15T15:00:00+02:00"
        );
        assert_eq!(answer.slots[0].staff.as_deref(), Some("Marie"));
    }

    #[test]
    fn a_slot_booked_for_the_same_staff_is_taken_and_the_next_free_ones_are_offered() {
        let busy = [Busy {
            start: at("2025-04-15", "14:30"),
            end: at("2025-04-15", "15:00"),
            staff: Some("Marie Schmidt".into()),
        }];
        let answer = check(
            &request("2025-04-15", "14:30", Some("Marie")),
            &busy,
            &default_week(),
            long_ago(),
        );
        assert!(!answer.available);
        let starts: Vec<_> = answer.slots.iter().map(|s| s.start.to_rfc3339()).collect();
        assert_eq!(
            starts,
            [
                "2025-04-15T15:00:00+02:00",
                "2025-04-15T15:30:00+02:00",
                "2025-04-15T16:00:00+02:00"
            ]
        );
    }

    #[test]
    fn another_staff_members_booking_does_not_block() {
        let busy = [Busy {
            start: at("2025-04-15", "14:30"),
            end: at("2025-04-15", "15:00"),
            staff: Some("Tom".into()),
        }];
        let answer = check(
            &request("2025-04-15", "14:30", Some("Marie")),
            &busy,
            &default_week(),
            long_ago(),
        );
        assert!(answer.available);
    }

    #[test]
    fn closed_days_and_times_after_closing_are_never_offered() {
        // Sunday 2025-04-13: closed; the next slots are Monday from opening.
        let answer = check(
            &request("2025-04-13", "10:00", None),
            &[],
            &default_week(),
            long_ago(),
        );
        assert!(!answer.available);
        assert_eq!(
            answer.slots[0].start.to_rfc3339(),
            "2025-04-14T09:00:00+02:00"
        );
        // Saturday closes at 14:00: 13:45 for 30 minutes does not fit.
        let answer = check(
            &request("2025-04-12", "13:45", None),
            &[],
            &default_week(),
            long_ago(),
        );
        assert!(!answer.available);
    }

    #[test]
    fn slots_in_the_past_are_not_available() {
        let answer = check(
            &request("2025-04-15", "14:30", None),
            &[],
            &default_week(),
            at("2025-04-15", "16:00"),
        );
        assert!(!answer.available);
        assert_eq!(
            answer.slots[0].start.to_rfc3339(),
            "2025-04-15T16:00:00+02:00"
        );
    }
}
