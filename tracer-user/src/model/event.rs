//! Decoded probe events: the typed view of [`tracer_ebpf::GoroutineEvent`]
//! and [`tracer_ebpf::ObjectEvent`].

use tracer_ebpf::{
    EventKind, GoroutineEvent, ObjectEvent, CANCEL_FIRST, CANCEL_REMOVE, CONTEXT_PARENT_UNKNOWN,
    CONTEXT_REGISTERED, FLAG_NO_STACK, FLAG_READ_FAILED, GOROUTINE_EVENT_SIZE, OBJECT_EVENT_SIZE,
    OBJECT_FRAMES,
};

/// One goroutine state change with its kernel timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// Kernel thread that hit the probe.
    pub tid: u32,
    pub body: EventBody,
}

/// A goroutine creation, as read from the new `runtime.g`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spawn {
    pub goid: u64,
    /// `g.parentGoid`; 0 when the runtime created it without a parent.
    pub parent_goid: u64,
    /// `g.gopc`: return address of the `go` statement's call.
    pub gopc: u64,
    /// `g.startpc`: the goroutine's function.
    pub start_pc: u64,
    pub g_addr: u64,
    /// `g.atomicstatus` right after creation (runnable, or waiting for
    /// goroutines created parked, e.g. `iter.Pull` coroutines).
    pub status: u32,
    /// `g.waitreason` when created parked.
    pub wait_reason: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventBody {
    Spawn(Spawn),
    Park {
        goid: u64,
        /// Version-specific `waitReason` code.
        reason: u8,
        /// `gopark`'s `lock` argument (`&hchan.lock` for channel operations).
        lock: u64,
        g_addr: u64,
    },
    Ready {
        goid: u64,
        /// The goroutine whose code made it runnable; `None` when the runtime
        /// did it with no user goroutine on the thread (e.g. from a timer).
        waker: Option<u64>,
        g_addr: u64,
    },
    Exit {
        goid: u64,
        g_addr: u64,
    },
    /// The user stack of a goroutine about to create another; the next spawn
    /// on the same thread is its child.
    CreatorStack {
        goid: u64,
        /// Id in the probes' stack map; `None` when it could not be recorded.
        stack_id: Option<u32>,
    },
    Timer(TimerEvent),
    Context(ContextEvent),
}

impl EventBody {
    pub fn goid(&self) -> u64 {
        match *self {
            EventBody::Spawn(Spawn { goid, .. })
            | EventBody::Park { goid, .. }
            | EventBody::Ready { goid, .. }
            | EventBody::Exit { goid, .. }
            | EventBody::CreatorStack { goid, .. } => goid,
            EventBody::Timer(TimerEvent { goid, .. })
            | EventBody::Context(ContextEvent { goid, .. }) => goid,
        }
    }
}

/// Return addresses of the code that acted on a timer or context,
/// innermost first (the call chain up to the user's code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Frames {
    pcs: [u64; OBJECT_FRAMES],
}

impl Frames {
    pub fn new(pcs: &[u64]) -> Self {
        let mut out = Frames::default();
        for (slot, &pc) in out
            .pcs
            .iter_mut()
            .zip(pcs.iter().take_while(|&&pc| pc != 0))
        {
            *slot = pc;
        }
        out
    }

    pub fn pcs(&self) -> &[u64] {
        let len = self
            .pcs
            .iter()
            .position(|&pc| pc == 0)
            .unwrap_or(OBJECT_FRAMES);
        &self.pcs[..len]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerOp {
    /// Created and armed: `when`, `period`, its function and argument.
    Create {
        when: i64,
        period: i64,
        /// Code pc of `timer.f` (`time.sendTime`, `time.goFunc`, …).
        func: u64,
        /// With `func` = `time.goFunc`: the `AfterFunc` callback's code pc
        /// and its first captured word (a context deadline's `*timerCtx`).
        callback: Option<(u64, u64)>,
        /// Go ≥1.23 `timer.isChan`: a channel timer, collected by the GC
        /// when unreferenced.
        is_chan: bool,
    },
    Reset {
        when: i64,
        period: i64,
    },
    Stop {
        was_pending: bool,
    },
    /// Fired (on the system stack: no goroutine, no frames). The fields
    /// are as at creation, for timers armed before the tracer attached.
    Fire {
        when: i64,
        period: i64,
        func: u64,
        callback: Option<(u64, u64)>,
    },
    Sleep {
        when: i64,
    },
}

/// An operation on a timer (`object` is its `*runtime.timer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerEvent {
    pub timer: u64,
    pub op: TimerOp,
    pub goid: u64,
    pub frames: Frames,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextOp {
    /// `registered`: its parent keeps it (in `children`) until it is
    /// cancelled; `None`: the parent's type is unknown (stripped binary).
    Create { registered: Option<bool> },
    Cancel {
        /// `removeFromParent`.
        remove: bool,
        /// The context was not cancelled before this call.
        first: bool,
    },
}

/// An operation on a cancelable context (`context` is its `*cancelCtx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextEvent {
    pub context: u64,
    pub op: ContextOp,
    pub goid: u64,
    /// Creation: the calls into `context` from the user's code; cancel:
    /// who called `cancel` (the CancelFunc, the parent, the deadline).
    pub frames: Frames,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event record of {0} bytes, expected {GOROUTINE_EVENT_SIZE} or {OBJECT_EVENT_SIZE}")]
    BadSize(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("probe could not read the goroutine id (g at {0:#x})")]
    Unreadable(u64),
}

/// Decodes one ring-buffer record. Never panics: malformed records are
/// reported as errors for the caller to count.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    match bytes.len() {
        GOROUTINE_EVENT_SIZE => {
            // SAFETY: the length was checked, GoroutineEvent is repr(C) made
            // of plain integers (any bit pattern is valid), and
            // read_unaligned copes with the ring buffer's 8-byte (not
            // necessarily struct) alignment.
            let raw: GoroutineEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            from_raw(&raw)
        }
        OBJECT_EVENT_SIZE => {
            // SAFETY: as above, for ObjectEvent.
            let raw: ObjectEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            from_object(&raw)
        }
        len => Err(DecodeError::BadSize(len)),
    }
}

fn from_object(raw: &ObjectEvent) -> Result<Event, DecodeError> {
    let kind =
        EventKind::from_u32(raw.header.kind).ok_or(DecodeError::UnknownKind(raw.header.kind))?;
    if raw.flags & FLAG_READ_FAILED != 0 && raw.object == 0 {
        return Err(DecodeError::Unreadable(0));
    }
    let frames = Frames::new(&raw.frames);
    let timer = |op| {
        EventBody::Timer(TimerEvent {
            timer: raw.object,
            op,
            goid: raw.goid,
            frames,
        })
    };
    let body = match kind {
        EventKind::TimerCreate => timer(TimerOp::Create {
            when: raw.a as i64,
            period: raw.b as i64,
            func: raw.c,
            callback: (raw.e != 0).then_some((raw.e, raw.f)),
            is_chan: raw.code != 0,
        }),
        EventKind::TimerReset => timer(TimerOp::Reset {
            when: raw.a as i64,
            period: raw.b as i64,
        }),
        EventKind::TimerStop => timer(TimerOp::Stop {
            was_pending: raw.code != 0,
        }),
        EventKind::TimerFire => timer(TimerOp::Fire {
            when: raw.a as i64,
            period: raw.b as i64,
            func: raw.c,
            callback: (raw.e != 0).then_some((raw.e, raw.f)),
        }),
        EventKind::Sleep => timer(TimerOp::Sleep { when: raw.a as i64 }),
        EventKind::ContextCreate | EventKind::ContextCancel => EventBody::Context(ContextEvent {
            context: raw.object,
            op: if kind == EventKind::ContextCreate {
                ContextOp::Create {
                    registered: (raw.code & CONTEXT_PARENT_UNKNOWN == 0)
                        .then_some(raw.code & CONTEXT_REGISTERED != 0),
                }
            } else {
                ContextOp::Cancel {
                    remove: raw.code & CANCEL_REMOVE != 0,
                    first: raw.code & CANCEL_FIRST != 0,
                }
            },
            goid: raw.goid,
            frames,
        }),
        other => return Err(DecodeError::UnknownKind(other as u32)),
    };
    Ok(Event {
        ts_ns: raw.header.ts_ns,
        tid: raw.header.tid,
        body,
    })
}

fn from_raw(raw: &GoroutineEvent) -> Result<Event, DecodeError> {
    let kind =
        EventKind::from_u32(raw.header.kind).ok_or(DecodeError::UnknownKind(raw.header.kind))?;
    if raw.flags & FLAG_READ_FAILED != 0 && raw.goid == 0 {
        return Err(DecodeError::Unreadable(raw.g_addr));
    }
    let body = match kind {
        EventKind::Spawn => EventBody::Spawn(Spawn {
            goid: raw.goid,
            parent_goid: raw.other_goid,
            gopc: raw.pc,
            start_pc: raw.start_pc,
            g_addr: raw.g_addr,
            status: raw.code,
            wait_reason: raw.arg as u8,
        }),
        EventKind::Park => EventBody::Park {
            goid: raw.goid,
            reason: raw.code as u8,
            lock: raw.arg,
            g_addr: raw.g_addr,
        },
        EventKind::Ready => EventBody::Ready {
            goid: raw.goid,
            waker: (raw.other_goid != 0).then_some(raw.other_goid),
            g_addr: raw.g_addr,
        },
        EventKind::CreatorStack => EventBody::CreatorStack {
            goid: raw.goid,
            stack_id: (raw.flags & FLAG_NO_STACK == 0).then_some(raw.arg as u32),
        },
        EventKind::Exit => EventBody::Exit {
            goid: raw.goid,
            g_addr: raw.g_addr,
        },
        // Timer and context kinds come in ObjectEvents.
        other => return Err(DecodeError::UnknownKind(other as u32)),
    };
    Ok(Event {
        ts_ns: raw.header.ts_ns,
        tid: raw.header.tid,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_ebpf::EventHeader;

    fn bytes(ev: &GoroutineEvent) -> Vec<u8> {
        // SAFETY: GoroutineEvent is repr(C) plain data without padding.
        unsafe {
            std::slice::from_raw_parts(
                (ev as *const GoroutineEvent).cast::<u8>(),
                GOROUTINE_EVENT_SIZE,
            )
        }
        .to_vec()
    }

    #[test]
    fn abi_layout_is_stable() {
        assert_eq!(std::mem::size_of::<GoroutineEvent>(), 72);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, goid), 16);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, other_goid), 24);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, pc), 32);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, start_pc), 40);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, g_addr), 48);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, arg), 56);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, code), 64);
        assert_eq!(std::mem::offset_of!(GoroutineEvent, flags), 68);
    }

    #[test]
    fn decodes_each_kind() {
        let mut raw = GoroutineEvent {
            header: EventHeader {
                kind: EventKind::Spawn as u32,
                tid: 7,
                ts_ns: 100,
            },
            goid: 42,
            other_goid: 1,
            pc: 0x4a0000,
            start_pc: 0x4b0000,
            g_addr: 0xc000001000,
            arg: 0,
            code: 1,
            flags: 0,
        };
        let ev = decode_event(&bytes(&raw)).unwrap();
        assert_eq!(ev.ts_ns, 100);
        assert_eq!(ev.tid, 7);
        assert!(matches!(
            ev.body,
            EventBody::Spawn(Spawn {
                goid: 42,
                parent_goid: 1,
                gopc: 0x4a0000,
                status: 1,
                ..
            })
        ));

        raw.header.kind = EventKind::Park as u32;
        raw.code = 14;
        raw.arg = 0xc000002000;
        let ev = decode_event(&bytes(&raw)).unwrap();
        assert_eq!(
            ev.body,
            EventBody::Park {
                goid: 42,
                reason: 14,
                lock: 0xc000002000,
                g_addr: 0xc000001000
            }
        );

        raw.header.kind = EventKind::Ready as u32;
        raw.other_goid = 0;
        let ev = decode_event(&bytes(&raw)).unwrap();
        assert_eq!(
            ev.body,
            EventBody::Ready {
                goid: 42,
                waker: None,
                g_addr: 0xc000001000
            }
        );

        raw.header.kind = EventKind::Exit as u32;
        let ev = decode_event(&bytes(&raw)).unwrap();
        assert_eq!(
            ev.body,
            EventBody::Exit {
                goid: 42,
                g_addr: 0xc000001000
            }
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert_eq!(decode_event(&[0u8; 10]), Err(DecodeError::BadSize(10)));
        assert_eq!(decode_event(&[]), Err(DecodeError::BadSize(0)));
        let raw = GoroutineEvent {
            header: EventHeader {
                kind: 99,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            decode_event(&bytes(&raw)),
            Err(DecodeError::UnknownKind(99))
        );
        let raw = GoroutineEvent {
            header: EventHeader {
                kind: EventKind::Park as u32,
                ..Default::default()
            },
            g_addr: 0x10,
            flags: FLAG_READ_FAILED,
            ..Default::default()
        };
        assert_eq!(
            decode_event(&bytes(&raw)),
            Err(DecodeError::Unreadable(0x10))
        );
    }
}
