//! `Last-Event-ID` parsing and the SSE writer over any sequence of queue
//! views: never a panic; ids never go down, a position is never above an
//! earlier one (or what `Last-Event-ID` implied), nothing after the end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_server::model::{QueueStatus, QueueView};
use ticket_server::routes::{parse_last_event_id, SseWriter};

fuzz_target!(|input: (&str, u64, Vec<(u8, u64, u64, bool)>)| {
    let (last_event_id, seq, views) = input;
    let last = parse_last_event_id(last_event_id);
    let mut writer = SseWriter::new(seq, last, false);
    let mut last_id = last.unwrap_or(0);
    let mut lowest = last.map(|l| seq.saturating_add(1).saturating_sub(l).max(1));
    for (status, position, cursor, heartbeat) in views {
        let status = match status % 4 {
            0 => QueueStatus::Waiting,
            1 => QueueStatus::Active,
            2 => QueueStatus::Done,
            _ => QueueStatus::Expired,
        };
        let view = QueueView {
            status,
            position,
            estimated_wait_seconds: position,
            paused: cursor % 3 == 0,
            cursor,
        };
        let was_finished = writer.finished();
        let Some(frame) = writer.render(view, heartbeat) else {
            continue;
        };
        assert!(!was_finished, "a frame after the stream ended");
        let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
        assert!(text.ends_with("\n\n"), "{text:?}");
        let id: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .and_then(|v| v.parse().ok())
            .expect("every frame has an id");
        assert!(id >= last_id, "id went down: {last_id} -> {id}");
        last_id = id;
        if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: {\"position\":")) {
            let shown: u64 = data
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a position");
            if let Some(low) = lowest {
                assert!(shown <= low, "position went up: {low} -> {shown}");
            }
            lowest = Some(shown);
        }
    }
});
