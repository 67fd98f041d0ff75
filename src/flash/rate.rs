//! Throughput and time-left estimates for progress displays, from (time, bytes) samples.
//!
//! The rate is measured over a sliding window of a few seconds, so it follows the current
//! speed (a slow network, a disk whose cache filled up) without jumping on every sample.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rate looks.
const WINDOW: Duration = Duration::from_secs(3);

/// A sliding-window rate meter.
#[derive(Default)]
pub struct Meter {
    samples: VecDeque<(Instant, u64)>,
}

impl Meter {
    /// Adds a sample and returns the rate in bytes per second and, with a known `total`, the
    /// estimated seconds left.
    pub fn sample(&mut self, now: Instant, bytes: u64, total: Option<u64>) -> (f64, Option<f64>) {
        // A counter that goes back (the verify pass starts again at 0) starts a new window.
        if self.samples.back().is_some_and(|&(_, b)| b > bytes) {
            self.samples.clear();
        }
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && self.samples.front().is_some_and(|&(t, _)| now.duration_since(t) > WINDOW)
        {
            self.samples.pop_front();
        }
        let Some(&(t0, b0)) = self.samples.front() else { return (0.0, None) };
        let secs = now.duration_since(t0).as_secs_f64();
        let rate = if secs > 0.0 { (bytes - b0) as f64 / secs } else { 0.0 };
        let eta = total.filter(|_| rate > 0.0).map(|t| t.saturating_sub(bytes) as f64 / rate);
        (rate, eta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_the_recent_window() {
        let t = Instant::now();
        let mut m = Meter::default();
        assert_eq!(m.sample(t, 0, Some(1000)), (0.0, None));
        let (rate, eta) = m.sample(t + Duration::from_secs(1), 100, Some(1000));
        assert_eq!(rate, 100.0);
        assert_eq!(eta, Some(9.0));
        // Ten seconds later at a faster pace, the old samples no longer count.
        for s in 2..=10 {
            m.sample(t + Duration::from_secs(s), 100 + (s - 1) * 50, Some(1000));
        }
        let (rate, _) = m.sample(t + Duration::from_secs(11), 600, None);
        assert_eq!(rate, 50.0);
    }

    #[test]
    fn a_counter_going_back_starts_a_new_window() {
        let t = Instant::now();
        let mut m = Meter::default();
        m.sample(t, 500, None);
        let (rate, _) = m.sample(t + Duration::from_secs(1), 100, None);
        assert_eq!(rate, 0.0);
    }
}
