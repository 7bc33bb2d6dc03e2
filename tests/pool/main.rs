//! The pools' suites: each aspect's module runs against `UnsyncPool` and
//! `SyncPool` alike (single-threaded: runs under Miri). The threaded
//! stress of `SyncPool` is in `tests/pool_threads`.

#[path = "../support/mod.rs"]
mod support;

/// One copy of every aspect's tests for the pool type `$pool`.
macro_rules! suite {
    ($name:ident, $pool:ident) => {
        mod $name {
            use memres::$pool as Pool;

            /// Per-class stats (`&mut`: the synchronized pool's needs it).
            #[allow(dead_code)]
            fn stats<U: memres::MemoryResource>(pool: &mut Pool<U>) -> Vec<memres::ClassStats> {
                pool.class_stats()
            }

            mod alias_models {
                include!("alias_models.rs");
            }
            mod alloc {
                include!("alloc.rs");
            }
            #[cfg(feature = "debug-checks")]
            mod debug_checks {
                include!("debug_checks.rs");
            }
            mod lifecycle {
                include!("lifecycle.rs");
            }
        }
    };
}

suite!(unsync, UnsyncPool);
suite!(sync, SyncPool);

#[test]
fn unsync_pool_is_send() {
    fn send<T: Send>(_: T) {}
    send(memres::UnsyncPool::new());
}

#[test]
fn sync_pool_is_send_and_sync() {
    fn shared<T: Send + Sync>(_: T) {}
    shared(memres::SyncPool::new());
}
