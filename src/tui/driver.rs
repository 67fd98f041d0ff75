//! The loop that runs the wizard: terminal input and worker results become events, the state
//! machine's effects become work on threads, and each turn paints what changed.
//!
//! Everything slow (a catalog download, disk discovery, the flash itself) runs on a worker
//! thread that reports back over a channel, so the screen keeps answering keys and the
//! progress bar keeps moving. The driver holds no wizard logic: it only carries effects out.
//! A flash thread is never abandoned: leaving the loop for any reason cancels it and waits.

use super::backend::{Backend, FlashFailure};
use super::caps::Caps;
use super::display::Display;
use super::key::Key;
use super::state::{Effect, Event, Outcome, Setup, Wizard};
use super::term::{Input, Terminal};
use super::view;
use crate::error::{ErrorKind, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long one turn waits for input; worker results are picked up at least this often, which
/// keeps the progress display moving several times a second.
const TURN: Duration = Duration::from_millis(100);

/// Runs the wizard on `term` with `backend` until the operator quits, reboots, or a signal ends
/// it. The terminal is left tidy (attributes reset, screen cleared) on every way out.
pub fn drive(
    term: &mut dyn Terminal,
    backend: Arc<dyn Backend>,
    setup: Setup,
    caps: Caps,
) -> Result<Outcome> {
    let (wizard, effects) = Wizard::new(setup);
    let (tx, rx) = mpsc::channel();
    let mut run = Run { wizard, display: Display::new(caps), caps, backend, tx, flash: None };
    let result = run.turns(term, &rx, effects.into());
    run.stop_flash(&rx);
    let bye = run.display.leave();
    let _ = term.write(&bye);
    result
}

/// One running wizard and the work it started.
struct Run {
    wizard: Wizard,
    display: Display,
    caps: Caps,
    backend: Arc<dyn Backend>,
    tx: Sender<Event>,
    flash: Option<FlashThread>,
}

struct FlashThread {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Run {
    fn turns(
        &mut self,
        term: &mut dyn Terminal,
        rx: &Receiver<Event>,
        mut pending: VecDeque<Effect>,
    ) -> Result<Outcome> {
        loop {
            while let Some(effect) = pending.pop_front() {
                match effect {
                    Effect::Quit(outcome) => return Ok(outcome),
                    Effect::Reboot => {
                        // Show "rebooting..." before a call that may not return.
                        self.paint(term)?;
                        match self.backend.reboot() {
                            Ok(()) => return Ok(Outcome::Reboot),
                            Err(e) => pending.extend(self.wizard.handle(Event::RebootFailed(e.to_string()))),
                        }
                    }
                    other => self.spawn(other),
                }
            }
            self.paint(term)?;
            for input in term.read_input(TURN)? {
                let event = match input {
                    Input::Key(Key::Redraw) | Input::Resize => {
                        self.display.invalidate();
                        continue;
                    }
                    Input::Key(key) => Event::Key(key),
                    Input::Line(line) => {
                        // A typed line scrolled the menu away: print it again.
                        self.display.invalidate();
                        Event::Line(line)
                    }
                    Input::Interrupt => Event::Interrupt,
                    Input::Stop(outcome) => Event::Stop(outcome),
                };
                pending.extend(self.wizard.handle(event));
            }
            while let Ok(event) = rx.try_recv() {
                pending.extend(self.wizard.handle(event));
            }
        }
    }

    fn paint(&mut self, term: &mut dyn Terminal) -> Result<()> {
        let size = term.size();
        let frame = view::frame(&self.wizard, size, self.caps);
        let bytes = self.display.paint(&frame, size.cols, size.rows);
        term.write(&bytes)
    }

    /// Starts the work an effect asks for on its own thread.
    fn spawn(&mut self, effect: Effect) {
        let backend = Arc::clone(&self.backend);
        let tx = self.tx.clone();
        match effect {
            Effect::LoadImages { generation, source } => {
                std::thread::spawn(move || {
                    let result = backend.images(&source).map_err(|e| e.to_string());
                    let _ = tx.send(Event::Images { generation, result });
                });
            }
            Effect::ScanDisks { generation, image } => {
                std::thread::spawn(move || {
                    let result = backend.disks(&image).map_err(|e| e.to_string());
                    let _ = tx.send(Event::Disks { generation, result });
                });
            }
            Effect::StartFlash(job) => {
                let cancel = Arc::new(AtomicBool::new(false));
                let stop = Arc::clone(&cancel);
                let handle = std::thread::spawn(move || {
                    let progress_tx = tx.clone();
                    let mut progress = |p: &crate::flash::Progress| {
                        let _ = progress_tx.send(Event::Progress(p.clone()));
                    };
                    // A panicking engine must still end the flashing screen.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        backend.flash(&job, &mut progress, &stop)
                    }));
                    let result = match result {
                        Ok(r) => r.map_err(FlashFailure::from),
                        Err(_) => Err(FlashFailure {
                            kind: ErrorKind::Failed,
                            message: "the flash engine crashed; the disk holds a partial image".into(),
                        }),
                    };
                    let _ = tx.send(Event::Finished(result));
                });
                self.flash = Some(FlashThread { cancel, handle });
            }
            Effect::CancelFlash => {
                if let Some(f) = &self.flash {
                    f.cancel.store(true, Ordering::Relaxed);
                }
            }
            Effect::Reboot | Effect::Quit(_) => {}
        }
    }

    /// Cancels a flash that is still running (the loop ended on an error) and waits for it.
    fn stop_flash(&mut self, rx: &Receiver<Event>) {
        if let Some(f) = self.flash.take() {
            if !f.handle.is_finished() {
                f.cancel.store(true, Ordering::Relaxed);
            }
            let _ = f.handle.join();
            while rx.try_recv().is_ok() {}
        }
    }
}
