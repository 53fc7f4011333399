//! The admission consumer sends a batch's script calls in one pipeline
//! (`lua::run_pipelined`): on a real Redis, each call gets its own reply
//! in order, and a Redis that lost its scripts (a restart, `SCRIPT FLUSH`)
//! gets them loaded and the batch sent again rather than failing it.

use ticket_server::backend::stack::keys::EventKeys;
use ticket_server::backend::stack::line::RegisterReply;
use ticket_server::backend::stack::lua::{run_pipelined, RedisScripts};

#[tokio::test]
async fn a_batch_gets_one_reply_per_call_in_order_even_after_the_scripts_were_flushed() {
    let Some(stack) = testkit::real_stack() else {
        return;
    };
    let client = redis::Client::open(stack.redis_url.as_str()).expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .expect("SCRIPT FLUSH");

    let scripts = RedisScripts::new();
    let keys = EventKeys::new(&stack.namespace, "no-such-event");
    let calls: Vec<_> = (0..3)
        .map(|i| {
            scripts
                .register
                .on(&keys)
                .arg(format!("user-{i}"))
                .arg(1_700_000_000_000u64)
                .arg(i)
        })
        .collect();
    let replies: Vec<RegisterReply> = run_pipelined(&calls, &mut redis)
        .await
        .expect("the batch runs once its script is loaded");
    assert_eq!(replies.len(), 3, "one reply per call: {replies:?}");
    assert!(
        replies.iter().all(|r| matches!(r, RegisterReply::NotFound)),
        "an event that does not exist is not found by any call: {replies:?}"
    );

    let none: Vec<RegisterReply> = run_pipelined(&[], &mut redis).await.expect("empty");
    assert!(none.is_empty());
}
