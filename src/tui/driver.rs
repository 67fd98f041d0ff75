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
                    Effect::Reboot | Effect::PowerOff => {
                        // Show "rebooting..." before a call that may not return.
                        self.paint(term)?;
                        let done = if effect == Effect::Reboot {
                            self.backend.reboot()
                        } else {
                            self.backend.power_off()
                        };
                        match done {
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
            Effect::Reboot | Effect::PowerOff | Effect::Quit(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Entry;
    use crate::error::Error;
    use crate::flash::{FlashReport, Phase, Progress};
    use crate::tui::backend::{DiskScan, FlashJob, SourceChoice};
    use crate::tui::state::tests::{disk, entry, report, setup};
    use crate::tui::view::Size;
    use std::sync::Mutex;

    /// What the fake engine does when asked to flash.
    #[derive(Clone, Copy, PartialEq)]
    enum Engine {
        Succeeds,
        WaitsForCancel,
        Panics,
    }

    struct FakeBackend {
        engine: Engine,
        flashed: Mutex<Vec<FlashJob>>,
        saw_cancel: AtomicBool,
    }

    impl FakeBackend {
        fn new(engine: Engine) -> Arc<FakeBackend> {
            Arc::new(FakeBackend { engine, flashed: Mutex::default(), saw_cancel: AtomicBool::new(false) })
        }
    }

    impl Backend for FakeBackend {
        fn images(&self, _: &SourceChoice) -> Result<Vec<Entry>> {
            Ok(vec![entry("a.img"), entry("b.img")])
        }
        fn disks(&self, _: &Entry) -> Result<DiskScan> {
            Ok(DiskScan {
                image_size: Some(4 << 20),
                disks: vec![disk("sda", Some("mounted"), false), disk("loop1", None, false)],
            })
        }
        fn flash(
            &self,
            job: &FlashJob,
            progress: &mut dyn FnMut(&Progress),
            cancel: &AtomicBool,
        ) -> Result<FlashReport> {
            self.flashed.lock().unwrap().push(job.clone());
            progress(&Progress {
                phase: Phase::Writing,
                bytes_written: 1 << 20,
                total_bytes: Some(4 << 20),
                rate: 1e6,
                eta_seconds: Some(3.0),
            });
            match self.engine {
                Engine::Succeeds => Ok(report()),
                Engine::Panics => panic!("engine bug"),
                Engine::WaitsForCancel => {
                    while !cancel.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    self.saw_cancel.store(true, Ordering::Relaxed);
                    Err(Error::new(ErrorKind::Cancelled, "cancelled after 1.0 MiB"))
                }
            }
        }
        fn reboot(&self) -> Result<()> {
            Err(Error::failed("not in a test"))
        }
        fn power_off(&self) -> Result<()> {
            Err(Error::failed("not in a test"))
        }
    }

    /// A terminal that answers each step's inputs once its expected text has been drawn.
    struct ScriptedTerminal {
        steps: VecDeque<(&'static str, Vec<Input>)>,
        drawn: String,
        turns: usize,
    }

    impl ScriptedTerminal {
        fn new(steps: Vec<(&'static str, Vec<Input>)>) -> ScriptedTerminal {
            ScriptedTerminal { steps: steps.into(), drawn: String::new(), turns: 0 }
        }
    }

    impl Terminal for ScriptedTerminal {
        fn read_input(&mut self, _timeout: Duration) -> Result<Vec<Input>> {
            self.turns += 1;
            assert!(
                self.turns < 3000,
                "stuck waiting for {:?}; screen so far:\n{}",
                self.steps.front(),
                self.drawn
            );
            match self.steps.front() {
                Some((want, _)) if self.drawn.contains(want) => {
                    self.drawn.clear();
                    Ok(self.steps.pop_front().map(|s| s.1).unwrap_or_default())
                }
                // Waiting for the drawing, or (script done) for the wizard to end by itself.
                _ => {
                    std::thread::sleep(Duration::from_millis(2));
                    Ok(Vec::new())
                }
            }
        }
        fn write(&mut self, bytes: &[u8]) -> Result<()> {
            self.drawn.push_str(&String::from_utf8_lossy(bytes));
            Ok(())
        }
        fn size(&self) -> Size {
            Size { cols: 80, rows: 24 }
        }
    }

    fn keys(text: &str) -> Vec<Input> {
        text.chars().map(|c| Input::Key(if c == '\n' { Key::Enter } else { Key::Char(c) })).collect()
    }

    /// The steps from the image list to a running flash onto /dev/loop1.
    fn start_flash() -> Vec<(&'static str, Vec<Input>)> {
        vec![("b.img", keys("1\n")), ("/dev/loop1", keys("2\n")), ("Type yes", keys("yes\n"))]
    }

    fn run(
        backend: Arc<FakeBackend>,
        steps: Vec<(&'static str, Vec<Input>)>,
    ) -> (Result<Outcome>, ScriptedTerminal) {
        let mut term = ScriptedTerminal::new(steps);
        let caps = Caps { addressing: true, unicode: false, colour: false };
        let outcome = drive(&mut term, backend, setup(None), caps);
        (outcome, term)
    }

    #[test]
    fn a_whole_flash_from_image_to_quit() {
        let backend = FakeBackend::new(Engine::Succeeds);
        let (outcome, term) =
            run(backend.clone(), [start_flash(), vec![("Flash complete", keys("q"))]].concat());
        assert_eq!(outcome.unwrap(), Outcome::Quit);
        let flashed = backend.flashed.lock().unwrap();
        assert_eq!(flashed.len(), 1);
        assert_eq!(flashed[0].target, std::path::Path::new("/dev/loop1"));
        // Leaving clears the screen.
        assert!(term.drawn.ends_with("\x1b[0m\x1b[H\x1b[2J"), "{:?}", term.drawn);
    }

    #[test]
    fn ctrl_c_then_y_cancels_a_running_flash() {
        let backend = FakeBackend::new(Engine::WaitsForCancel);
        let (outcome, _) = run(
            backend.clone(),
            [
                start_flash(),
                vec![
                    ("25%", vec![Input::Key(Key::Interrupt)]),
                    ("Cancel the flash?", keys("y")),
                    ("Flash cancelled", keys("q")),
                ],
            ]
            .concat(),
        );
        assert_eq!(outcome.unwrap(), Outcome::Quit);
        assert!(backend.saw_cancel.load(Ordering::Relaxed));
    }

    #[test]
    fn a_signal_during_a_flash_cancels_it_before_leaving() {
        let backend = FakeBackend::new(Engine::WaitsForCancel);
        let (outcome, _) = run(
            backend.clone(),
            [start_flash(), vec![("25%", vec![Input::Stop(Outcome::Interrupted)])]].concat(),
        );
        assert_eq!(outcome.unwrap(), Outcome::Interrupted);
        assert!(backend.saw_cancel.load(Ordering::Relaxed));
    }

    #[test]
    fn a_panicking_engine_ends_on_the_done_screen_with_a_failure() {
        let backend = FakeBackend::new(Engine::Panics);
        let (outcome, _) =
            run(backend, [start_flash(), vec![("the flash engine crashed", keys("q"))]].concat());
        assert_eq!(outcome.unwrap(), Outcome::Quit);
    }

    #[test]
    fn a_failed_reboot_is_reported_and_the_wizard_stays() {
        let backend = FakeBackend::new(Engine::Succeeds);
        let (outcome, _) = run(
            backend,
            [start_flash(), vec![("Reboot now", keys("1\n")), ("reboot failed: not in a test", keys("q"))]]
                .concat(),
        );
        assert_eq!(outcome.unwrap(), Outcome::Quit);
    }

    #[test]
    fn resize_and_ctrl_l_repaint_the_whole_screen() {
        let backend = FakeBackend::new(Engine::Succeeds);
        let (outcome, _) = run(
            backend,
            vec![
                ("b.img", vec![Input::Resize]),
                ("\x1b[2J", vec![Input::Key(Key::Redraw)]),
                ("\x1b[2J", keys("q")),
            ],
        );
        assert_eq!(outcome.unwrap(), Outcome::Quit);
    }
}
