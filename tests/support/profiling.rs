//! What the profiler's suites share: one test at a time (the profiler is
//! process-wide), and the bytes a folded profile gives a function.

use std::sync::{Mutex, MutexGuard, PoisonError};

use memres::profile;

/// The profiler is process-wide: one test at a time, each starting from a
/// stopped, empty profile.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    let guard = ONE.lock().unwrap_or_else(PoisonError::into_inner);
    profile::stop();
    profile::clear();
    guard
}

/// The estimated bytes of the folded lines whose stack names `function`.
pub fn bytes_of(folded: &str, function: &str) -> f64 {
    folded
        .lines()
        .filter(|line| line.split(';').any(|frame| frame.contains(function)))
        .map(|line| line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}
