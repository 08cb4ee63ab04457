//! The timeline: where playback is, whether it runs, how fast, and how times read.

use crate::frames::Clock;

/// Real seconds a whole run takes to play at the default speed.
const DEFAULT_PLAY_SECONDS: f64 = 24.0;

/// Playback position over frame times.
#[derive(Debug, Clone, PartialEq)]
pub struct Playback {
    /// Current time, seconds on the frames' clock.
    pub time: f64,
    /// Whether time advances by itself.
    pub playing: bool,
    /// Frame seconds per real second.
    pub speed: f64,
    /// Live: stay on the newest frame as frames arrive.
    pub follow_latest: bool,
}

impl Playback {
    /// Paused at the start of `times`, at a speed that plays them in about 24 s (or one frame
    /// per second for live streams).
    pub fn new(times: &[f64], live: bool) -> Playback {
        let span = match (times.first(), times.last()) {
            (Some(first), Some(last)) if last > first => last - first,
            _ => 0.0,
        };
        let speed = if live || span == 0.0 {
            1.0
        } else {
            span / DEFAULT_PLAY_SECONDS
        };
        Playback {
            time: if live {
                times.last().copied().unwrap_or(0.0)
            } else {
                times.first().copied().unwrap_or(0.0)
            },
            playing: false,
            speed,
            follow_latest: live,
        }
    }

    /// Moves time on by `real_seconds` while playing; stops at the last frame. Returns whether
    /// the time changed.
    pub fn advance(&mut self, real_seconds: f64, times: &[f64]) -> bool {
        let Some(&last) = times.last() else {
            return false;
        };
        if self.follow_latest {
            let changed = self.time != last;
            self.time = last;
            return changed;
        }
        if !self.playing {
            return false;
        }
        let next = (self.time + real_seconds * self.speed).min(last);
        if next >= last {
            self.playing = false;
        }
        let changed = next != self.time;
        self.time = next;
        changed
    }

    /// Jumps `frames` frames forward (or back when negative) from the current one; pauses.
    pub fn step(&mut self, frames: isize, times: &[f64]) {
        if times.is_empty() {
            return;
        }
        let current = times.partition_point(|&t| t <= self.time).saturating_sub(1);
        let target = (current as isize + frames).clamp(0, times.len() as isize - 1) as usize;
        self.time = times[target];
        self.playing = false;
        self.follow_latest = false;
    }

    /// Jumps to `fraction` (0 to 1) of the way from the first to the last frame.
    pub fn scrub(&mut self, fraction: f64, times: &[f64]) {
        if let (Some(&first), Some(&last)) = (times.first(), times.last()) {
            self.time = first + (last - first) * fraction.clamp(0.0, 1.0);
            self.follow_latest = false;
        }
    }

    /// Where the time is between the first and last frame, 0 to 1.
    pub fn fraction(&self, times: &[f64]) -> f64 {
        match (times.first(), times.last()) {
            (Some(&first), Some(&last)) if last > first => {
                ((self.time - first) / (last - first)).clamp(0.0, 1.0)
            }
            _ => 1.0,
        }
    }

    /// Starts or pauses; starting at the end plays from the beginning.
    pub fn toggle(&mut self, times: &[f64]) {
        self.follow_latest = false;
        if !self.playing && times.last().is_some_and(|&last| self.time >= last) {
            self.time = times[0];
        }
        self.playing = !self.playing;
    }

    /// Doubles or halves the speed.
    pub fn faster(&mut self, faster: bool) {
        self.speed = if faster {
            (self.speed * 2.0).min(1e9)
        } else {
            (self.speed / 2.0).max(1e-3)
        };
    }
}

/// `H:MM:SS` (elapsed, with days past the first as `Dd H:MM:SS`) or an RFC 3339-like UTC time.
pub fn format_time(seconds: f64, clock: Clock) -> String {
    match clock {
        Clock::Elapsed => {
            let total = seconds.max(0.0).round() as u64;
            let (days, rest) = (total / 86_400, total % 86_400);
            let clock = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
            if days > 0 {
                format!("{days}d {clock}")
            } else {
                clock
            }
        }
        Clock::Unix => {
            let total = seconds.floor() as i64;
            let (days, rest) = (total.div_euclid(86_400), total.rem_euclid(86_400));
            let (year, month, day) = civil_from_days(days);
            format!(
                "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
                rest / 3600,
                rest % 3600 / 60,
                rest % 60
            )
        }
    }
}

/// Parses `--time`: seconds (`3600`), `H:MM[:SS]`, or hours with a suffix (`10h`).
pub fn parse_time(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(hours) = text.strip_suffix('h') {
        return hours.parse::<f64>().ok().map(|h| h * 3600.0);
    }
    if text.contains(':') {
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() > 3 {
            return None;
        }
        let mut seconds = 0.0;
        for (i, part) in parts.iter().enumerate() {
            let value: f64 = part.parse().ok()?;
            seconds += value * [3600.0, 60.0, 1.0][i];
        }
        return Some(seconds);
    }
    text.parse().ok()
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOURLY: [f64; 25] = {
        let mut times = [0.0; 25];
        let mut i = 0;
        while i < 25 {
            times[i] = i as f64 * 3600.0;
            i += 1;
        }
        times
    };

    #[test]
    fn a_day_plays_in_about_24_seconds_and_stops_at_the_end() {
        let mut playback = Playback::new(&HOURLY, false);
        assert_eq!(playback.time, 0.0);
        assert!(!playback.advance(1.0, &HOURLY), "paused does not move");
        playback.toggle(&HOURLY);
        assert!(playback.advance(1.0, &HOURLY));
        assert!((playback.time - 3600.0).abs() < 1e-6);
        playback.advance(100.0, &HOURLY);
        assert_eq!(playback.time, 86_400.0);
        assert!(!playback.playing);
        playback.toggle(&HOURLY);
        assert_eq!(playback.time, 0.0, "play at the end restarts");
    }

    #[test]
    fn steps_and_scrubs_land_on_frames() {
        let mut playback = Playback::new(&HOURLY, false);
        playback.step(3, &HOURLY);
        assert_eq!(playback.time, 3.0 * 3600.0);
        playback.step(-10, &HOURLY);
        assert_eq!(playback.time, 0.0);
        playback.scrub(0.5, &HOURLY);
        assert_eq!(playback.time, 12.0 * 3600.0);
        assert!((playback.fraction(&HOURLY) - 0.5).abs() < 1e-9);
        playback.faster(true);
        assert_eq!(playback.speed, 7200.0);
    }

    #[test]
    fn live_follows_the_newest_frame_until_the_user_moves() {
        let mut times = vec![100.0, 200.0];
        let mut playback = Playback::new(&times, true);
        assert_eq!(playback.time, 200.0);
        times.push(300.0);
        assert!(playback.advance(0.1, &times));
        assert_eq!(playback.time, 300.0);
        playback.step(-1, &times);
        times.push(400.0);
        playback.advance(0.1, &times);
        assert_eq!(playback.time, 200.0);
    }

    #[test]
    fn times_format_and_parse() {
        assert_eq!(format_time(3725.0, Clock::Elapsed), "1:02:05");
        assert_eq!(format_time(90_000.0, Clock::Elapsed), "1d 1:00:00");
        assert_eq!(
            format_time(1_700_000_000.0, Clock::Unix),
            "2023-11-14 22:13:20 UTC"
        );
        assert_eq!(parse_time("10:30"), Some(37_800.0));
        assert_eq!(parse_time("10h"), Some(36_000.0));
        assert_eq!(parse_time("90"), Some(90.0));
        assert_eq!(parse_time("soon"), None);
    }
}
