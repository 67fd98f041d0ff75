use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full, up to `max_threads`.
/// Any idle thread will automatically die after a few seconds.
// bty: bounded. Upstream spawned without limit, so a burst of 1,000 connections made ~1,000
// threads. With a maximum, `spawn` blocks (the acceptor stops accepting, so connections wait in
// the kernel backlog) until a thread is idle; the queue never holds more tasks than idle threads.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,

    // bty: notified (under `todo`) whenever a worker becomes idle, for a `spawn` at the cap
    freed: Condvar,

    // bty: most worker threads alive at once (0: unbounded, as upstream)
    max_threads: usize,
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    pub fn new(max_threads: usize) -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
                freed: Condvar::new(),
                max_threads,
            }),
        };

        let initial = if max_threads == 0 { MIN_THREADS } else { MIN_THREADS.min(max_threads) };
        for _ in 0..initial {
            pool.add_thread(None)
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one; at `max_threads`, waits for an idle one.
    pub fn spawn(&self, code: Box<dyn FnMut() + Send>) {
        let sharing = &self.sharing;
        let mut queue = sharing.todo.lock().unwrap();
        loop {
            // bty: hand the task to an idle thread only if one is left for it.
            if queue.len() < sharing.waiting_tasks.load(Ordering::Acquire) {
                queue.push_back(code);
                sharing.condvar.notify_one();
                return;
            }
            let active = sharing.active_tasks.load(Ordering::Acquire);
            if sharing.max_threads == 0 || active < sharing.max_threads {
                // Counted before the thread runs, so a burst cannot overshoot the cap.
                sharing.active_tasks.fetch_add(1, Ordering::Release);
                drop(queue);
                self.add_thread(Some(code));
                return;
            }
            queue = sharing.freed.wait(queue).unwrap();
        }
    }

    fn add_thread(&self, initial_fn: Option<Box<dyn FnMut() + Send>>) {
        let sharing = self.sharing.clone();
        // bty: `spawn` counts a thread it starts before starting it; `new` counts here.
        if initial_fn.is_none() {
            sharing.active_tasks.fetch_add(1, Ordering::Release);
        }

        thread::spawn(move || {
            let sharing = sharing;
            // Already counted (above or in `spawn`); only the decrement on exit is registered here.
            let _active_guard = Registration { nb: &sharing.active_tasks };

            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task: Box<dyn FnMut() + Send> = {
                    let mut todo = sharing.todo.lock().unwrap();

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);
                        sharing.freed.notify_one();

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                todo = sharing.condvar.wait(todo).unwrap();
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap();
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();
            }
        });
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
