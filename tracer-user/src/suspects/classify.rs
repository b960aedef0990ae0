//! What a wait reason and a goroutine's function say about a possible leak.
//!
//! Wait reasons are classified by Go's own text (`runtime.waitReasonStrings`),
//! which is stable across versions even where the codes are not.

use serde::Serialize;

/// The kind of wait a goroutine is in, as far as leaks are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitClass {
    /// A channel send or receive, including on a nil channel: only another
    /// goroutine can end it.
    Channel,
    /// `select` (with or without cases).
    Select,
    /// `sync.Mutex`/`RWMutex`, `sync.Cond`, `sync.WaitGroup`, semaphores.
    Sync,
    /// Network or file I/O through the netpoller: connections waiting for
    /// their peer, not a leak by themselves.
    Io,
    /// `time.Sleep`: ends on its own.
    Sleep,
    /// Any other wait (the runtime's own: GC, finalizers, tracing, …).
    Other,
    /// Not waiting: running, runnable or in a system call.
    NotWaiting,
}

impl WaitClass {
    pub fn of_wait_reason(reason: &str) -> Self {
        if reason.starts_with("chan send") || reason.starts_with("chan receive") {
            WaitClass::Channel
        } else if reason.starts_with("select") {
            WaitClass::Select
        } else if reason == "semacquire"
            || (reason.starts_with("sync.") && !reason.starts_with("synctest"))
        {
            WaitClass::Sync
        } else if reason == "IO wait" {
            WaitClass::Io
        } else if reason == "sleep" {
            WaitClass::Sleep
        } else {
            WaitClass::Other
        }
    }

    /// Waits that last forever unless another goroutine acts: what the
    /// "blocked" and "backlog" rules look at.
    pub fn can_block_forever(self) -> bool {
        matches!(
            self,
            WaitClass::Channel | WaitClass::Select | WaitClass::Sync
        )
    }

    /// Waits an idle worker pool sits in: receiving from a job channel.
    pub fn is_receive_like(self, reason: &str) -> bool {
        match self {
            WaitClass::Channel => reason.starts_with("chan receive"),
            WaitClass::Select => true,
            _ => false,
        }
    }
}

/// Goroutines that belong to the Go runtime or the standard library's own
/// machinery (GC workers, scavenger, finalizer and cleanup goroutines, the
/// `os/signal` loop), judged by the goroutine's function or the function
/// that created it. They are never suspects.
pub fn is_runtime_owned(start_function: Option<&str>, creator_function: Option<&str>) -> bool {
    let runtime = |f: &str| {
        f.starts_with("runtime.")
            || f.starts_with("runtime/")
            || f.starts_with("os/signal.")
            || f.starts_with("internal/")
    };
    start_function.is_some_and(runtime) || creator_function.is_some_and(runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_reasons_of_every_supported_version_are_classified() {
        for (reason, class) in [
            ("chan receive", WaitClass::Channel),
            ("chan send", WaitClass::Channel),
            ("chan receive (nil chan)", WaitClass::Channel),
            ("chan send (nil chan)", WaitClass::Channel),
            ("chan receive (synctest)", WaitClass::Channel),
            ("select", WaitClass::Select),
            ("select (no cases)", WaitClass::Select),
            ("sync.Cond.Wait", WaitClass::Sync),
            ("sync.Mutex.Lock", WaitClass::Sync),
            ("sync.RWMutex.RLock", WaitClass::Sync),
            ("sync.RWMutex.Lock", WaitClass::Sync),
            ("sync.WaitGroup.Wait", WaitClass::Sync),
            ("semacquire", WaitClass::Sync),
            ("synctest.Wait", WaitClass::Other),
            ("IO wait", WaitClass::Io),
            ("sleep", WaitClass::Sleep),
            ("GC worker (idle)", WaitClass::Other),
            ("finalizer wait", WaitClass::Other),
            ("force gc (idle)", WaitClass::Other),
            ("timer goroutine (idle)", WaitClass::Other),
            ("GC sweep wait", WaitClass::Other),
            ("", WaitClass::Other),
        ] {
            assert_eq!(WaitClass::of_wait_reason(reason), class, "{reason:?}");
        }
        assert!(WaitClass::Sync.can_block_forever());
        assert!(!WaitClass::Io.can_block_forever());
        assert!(WaitClass::Channel.is_receive_like("chan receive"));
        assert!(!WaitClass::Channel.is_receive_like("chan send"));
    }

    #[test]
    fn runtime_goroutines_are_recognised_by_function_or_creator() {
        assert!(is_runtime_owned(Some("runtime.gcBgMarkWorker"), None));
        assert!(is_runtime_owned(Some("os/signal.loop"), None));
        assert!(is_runtime_owned(
            Some("main.cleanup"),
            Some("runtime.AddCleanup")
        ));
        assert!(!is_runtime_owned(Some("main.worker"), Some("main.main")));
        assert!(!is_runtime_owned(
            Some("net/http.(*conn).serve"),
            Some("net/http.(*Server).Serve")
        ));
        assert!(!is_runtime_owned(None, None));
    }
}
