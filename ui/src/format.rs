//! How the console writes times and durations. Pure, so it is tested natively.

/// `ms` since the Unix epoch as `2026-11-27 04:25:11 UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1_000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// How far `then_ms` is from `now_ms`: `12 s ago`, `3 min ago`, `in 23 h`, `in 5 d`.
pub fn relative(now_ms: u64, then_ms: u64) -> String {
    let (past, delta) = if then_ms <= now_ms {
        (true, now_ms - then_ms)
    } else {
        (false, then_ms - now_ms)
    };
    let secs = delta / 1_000;
    let span = match secs {
        0..=59 => format!("{secs} s"),
        60..=3_599 => format!("{} min", secs / 60),
        3_600..=172_799 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    };
    if past {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A duration in milliseconds for people: `850 ms`, `1.02 s`, `2 min 5 s`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.2} s", ms as f64 / 1_000.0),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_753_511_000), "2026-11-27 04:25:11 UTC");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(relative(10_000, 0), "10 s ago");
        assert_eq!(relative(0, 90_000), "in 1 min");
        assert_eq!(relative(0, 23 * 3_600_000), "in 23 h");
        assert_eq!(relative(5 * 86_400_000, 0), "5 d ago");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1_020), "1.02 s");
        assert_eq!(duration(125_000), "2 min 5 s");
    }
}
