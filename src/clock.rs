//! Time as this service writes it: Unix seconds as a float (Prometheus' and our JSON's
//! convention), milliseconds for exchange timestamps, and Upbit's calendar dates.

use std::time::SystemTime;

/// Unix time in seconds, as a float; 0 for a time before the epoch.
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix time in whole milliseconds (Upbit's timestamp unit).
pub fn unix_ms(at: SystemTime) -> u64 {
    (unix_seconds(at) * 1000.0).round() as u64
}

/// `2024-06-13` or `20240613` as the Unix time of 00:00 UTC that day.
pub fn date_to_unix_seconds(date: &str) -> Option<f64> {
    let digits: String = date.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (
        digits[0..4].parse().ok()?,
        digits[4..6].parse().ok()?,
        digits[6..8].parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((days_from_civil(y, m, d) * 86_400) as f64)
}

/// Upbit's `yyyy-MM-ddTHH:mm:ss` (UTC; candles' `candle_date_time_utc`) as Unix seconds, read
/// without allocating.
pub fn datetime_to_unix_seconds(datetime: impl AsRef<[u8]>) -> Option<f64> {
    let b = datetime.as_ref();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (h, min, s) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    Some((days_from_civil(y, m, d) * 86_400 + h * 3_600 + min * 60 + s) as f64)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delisting_dates_become_unix_midnights() {
        assert_eq!(date_to_unix_seconds("1970-01-01"), Some(0.0));
        assert_eq!(date_to_unix_seconds("2024-06-13"), Some(1_718_236_800.0));
        assert_eq!(date_to_unix_seconds("20000301"), Some(951_868_800.0));
        assert_eq!(date_to_unix_seconds("2024-13-01"), None);
        assert_eq!(date_to_unix_seconds("soon"), None);
    }

    #[test]
    fn candle_start_times_become_unix_seconds() {
        assert_eq!(datetime_to_unix_seconds("1970-01-01T00:00:00"), Some(0.0));
        // 2025-01-02 is day 20090: 20090 × 86400 + 4 h 28 min 5 s.
        assert_eq!(
            datetime_to_unix_seconds("2025-01-02T04:28:05"),
            Some(1_735_792_085.0)
        );
        assert_eq!(datetime_to_unix_seconds("2025-01-02 04:28:05"), None);
        assert_eq!(datetime_to_unix_seconds("2025-13-02T04:28:05"), None);
        assert_eq!(datetime_to_unix_seconds("2025-01-02T04:28"), None);
    }

    #[test]
    fn milliseconds_round_to_the_nearest() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500);
        assert_eq!(unix_ms(at), 2);
        assert_eq!(
            unix_seconds(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            0.0
        );
    }
}
