//! The real terminal: raw mode and the alternate screen while the dashboard
//! runs, restored on every way out (drop, error return, panic), and a thread
//! that reads keys and resizes for the tokio session.

use std::{
    io::{self, Stdout},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Once,
    },
    thread::JoinHandle,
    time::Duration,
};

use crossterm::{
    cursor,
    event::{self, Event, KeyEvent},
    execute,
    terminal::{self as term, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use super::App;

/// Whether the terminal is in the dashboard's modes, for the panic hook.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// The terminal in raw mode on the alternate screen, cursor hidden. Dropping
/// it (or calling [`Terminal::restore`]) puts the terminal back; a panic
/// anywhere does too, before the panic message is printed.
pub struct Terminal {
    inner: ratatui::Terminal<CrosstermBackend<Stdout>>,
}

impl Terminal {
    pub fn start() -> io::Result<Self> {
        install_panic_hook();
        term::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let started = (|| {
            execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
            let mut inner = ratatui::Terminal::new(CrosstermBackend::new(io::stdout()))?;
            inner.clear()?;
            Ok(Terminal { inner })
        })();
        if started.is_err() {
            reset();
        }
        started
    }

    /// Draws the app; only the cells that changed since the last draw reach
    /// the terminal. Follows a resize by itself.
    pub fn draw(&mut self, app: &mut App) -> io::Result<()> {
        self.inner.draw(|frame| app.render(frame))?;
        Ok(())
    }

    /// Leaves the alternate screen and raw mode, shows the cursor. Safe to
    /// call more than once; `drop` calls it too.
    pub fn restore(&mut self) -> io::Result<()> {
        if ACTIVE.swap(false, Ordering::SeqCst) {
            let left = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
            term::disable_raw_mode()?;
            left?;
        }
        Ok(())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// Best-effort restore, for the panic hook and failed starts.
fn reset() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = term::disable_raw_mode();
    }
}

/// Restores the terminal before the previous hook prints the panic, so the
/// message lands on the normal screen and the shell is usable afterwards.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            reset();
            previous(info);
        }));
    });
}

/// What the input thread forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Key(KeyEvent),
    Resize { cols: u16, rows: u16 },
}

/// How often the input thread looks whether it should stop.
const POLL: Duration = Duration::from_millis(100);

/// Keys and resizes read on a thread of their own (crossterm's reads block),
/// delivered to the async session through [`InputReader::next`]. The thread
/// stops when this is dropped or the terminal cannot be read.
pub struct InputReader {
    rx: mpsc::UnboundedReceiver<io::Result<Input>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl InputReader {
    pub fn start() -> io::Result<Self> {
        // Unbounded is fine: a person types a few keys a second.
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("tracer-tui-input".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || read_input(&tx, &stop)
            })?;
        Ok(InputReader {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// The next key or resize; `None` once the thread has stopped. A read
    /// error is delivered once, then the thread stops.
    pub async fn next(&mut self) -> Option<io::Result<Input>> {
        self.rx.recv().await
    }
}

impl Drop for InputReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.rx.close();
        if let Some(thread) = self.thread.take() {
            // Returns within one poll period.
            let _ = thread.join();
        }
    }
}

fn read_input(tx: &mpsc::UnboundedSender<io::Result<Input>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) && !tx.is_closed() {
        let input = match event::poll(POLL) {
            Ok(false) => continue,
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) => Input::Key(key),
                Ok(Event::Resize(cols, rows)) => Input::Resize { cols, rows },
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            },
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if tx.send(Ok(input)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With or without a terminal (CI has none), the reader thread ends
    /// within a poll period once the reader is dropped.
    #[test]
    fn input_reader_stops_when_dropped() {
        let reader = InputReader::start().expect("thread starts");
        let started = std::time::Instant::now();
        drop(reader);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
