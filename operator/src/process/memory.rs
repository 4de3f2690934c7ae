//! Keeping the operator's resident memory close to what it really holds.
//!
//! glibc's malloc gives every thread that contends for the heap an arena of its own (up to
//! eight per core) and keeps freed memory in them. The operator's burst of work at start (the
//! first pass over every bot, with the watch events of every child it creates) frees most of
//! what it allocates, but freed memory spread over many arenas stays resident: at 10,000 bots
//! that was more than the live heap itself. Two arenas, and handing free pages back to the
//! kernel now and then, keep the resident size near the live heap.

use std::time::Duration;

/// How often free memory is handed back to the kernel.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Limits malloc to two arenas. Call before the runtime starts its threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc setting; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands free heap pages back to the kernel (a few milliseconds at most).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe; it only returns free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Calls [`release_free_memory`] every [`TRIM_EVERY`] until `stop` fires.
pub async fn release_free_memory_periodically(stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(TRIM_EVERY) => {
                tokio::task::spawn_blocking(release_free_memory).await.ok();
            }
        }
    }
}
