//! Test support shared by the workspace's tests, used only as a
//! dev-dependency: the reference server in process ([`start`]), the rule
//! for tests that need the real stack ([`real_stack`]), temporary
//! directories ([`TempDir`]), a Server-Sent Events reader ([`SseReader`]),
//! negative controls counted over many runs ([`caught_in`]) and stand-in
//! HTTP servers ([`fake::serve`]).

mod caught;
mod dir;
pub mod fake;
mod http;
mod server;
mod sse;
mod stack;

pub use caught::{caught_in, Trial};
pub use dir::TempDir;
pub use http::{assert_error, call, eventually, split};
pub use server::{
    start, start_with_default_limits, Backend, TestServer, ADMIN, RATE_LIMITS, SECRET,
};
pub use sse::{Sse, SseReader};
pub use stack::{real_stack, RealStack};

/// Runs one test body on both backends, as `mod NAME { fn memory(); fn
/// real(); }`; `real` follows [`real_stack`]'s rule when the stack is
/// absent. The body gets the started [`TestServer`] as `$s`.
#[macro_export]
macro_rules! on_both_stacks {
    ($name:ident, [$($arg:expr),*], |$s:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let $s = $crate::start(&$crate::Backend::Memory, &[$($arg),*]).await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real() {
                let Some(backend) = $crate::Backend::real() else { return };
                let $s = $crate::start(&backend, &[$($arg),*]).await;
                $body
            }
        }
    };
}
