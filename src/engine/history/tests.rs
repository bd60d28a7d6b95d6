//! The history's own rules: offsets, resume, bounds, a bridge's loads.

use super::*;

fn history(config: HistoryConfig) -> History {
    History::new(config, false, Arc::new(Gauge::default()))
}

fn publish(h: &History, topic: &str, text: &str) -> Position {
    let frame = SharedFrame::new(Box::from(text.as_bytes()), &h.gauge);
    let mut got = None;
    h.append_local(topic, MessageKind::Text, text.as_bytes(), frame, |_, e| {
        if let Event::Message { tagged, .. } = e {
            got = Some(tagged.at);
        }
    });
    got.unwrap()
}

fn payloads(frames: &[Arc<SharedFrame>]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            let (_, p) = proto::frame::split_frame(f).unwrap();
            String::from_utf8(p.to_vec()).unwrap()
        })
        .collect()
}

#[test]
fn offsets_count_up_per_topic_and_resume_sends_what_came_after() {
    let h = history(HistoryConfig::default());
    let a1 = publish(&h, "a", "one");
    let a2 = publish(&h, "a", "two");
    let b1 = publish(&h, "b", "uno");
    assert_eq!((a1.offset, a2.offset, b1.offset), (1, 2, 1));
    assert_eq!(a1.epoch, a2.epoch);
    publish(&h, "a", "three");
    let Read::Ready { resume, frames, .. } = h.read("a", Since::After(a1)) else {
        panic!("loaded")
    };
    assert_eq!(payloads(&frames), ["2 two", "3 three"]);
    assert_eq!(
        resume,
        Resume::Recovered {
            at: Position {
                epoch: a1.epoch,
                offset: 3
            },
            count: 2
        }
    );
    let Read::Ready { resume, frames, .. } = h.read("a", Since::Now) else {
        panic!()
    };
    assert!(frames.is_empty());
    assert!(matches!(resume, Resume::Recovered { count: 0, at } if at.offset == 3));
}

#[test]
fn another_epoch_or_a_forgotten_offset_is_lost_never_a_silent_gap() {
    let h = history(HistoryConfig {
        max_messages: 3,
        ..HistoryConfig::default()
    });
    let first = publish(&h, "t", "m1");
    for i in 2..=5 {
        publish(&h, "t", &format!("m{i}"));
    }
    // 3, 4 and 5 are kept: after 2 is fine, after 1 misses 2.
    let after = |offset| {
        Since::After(Position {
            epoch: first.epoch,
            offset,
        })
    };
    assert!(matches!(
        h.read("t", after(2)),
        Read::Ready {
            resume: Resume::Recovered { count: 3, .. },
            ..
        }
    ));
    assert!(matches!(
        h.read("t", after(1)),
        Read::Ready {
            resume: Resume::Lost { .. },
            ..
        }
    ));
    let other = Since::After(Position {
        epoch: first.epoch ^ 2,
        offset: 4,
    });
    assert!(matches!(
        h.read("t", other),
        Read::Ready {
            resume: Resume::Lost { .. },
            ..
        }
    ));
    assert!(matches!(
        h.read("t", after(9)),
        Read::Ready {
            resume: Resume::Lost { .. },
            ..
        }
    ));
}

#[test]
fn bytes_are_bounded_per_topic_and_per_node() {
    let h = history(HistoryConfig {
        max_bytes: 100,
        max_total_bytes: 150,
        ..HistoryConfig::default()
    });
    let big = "x".repeat(40);
    for _ in 0..10 {
        publish(&h, "a", &big);
    }
    assert!(h.bytes() <= 100, "{}", h.bytes());
    for _ in 0..10 {
        publish(&h, "b", &big);
    }
    assert!(h.bytes() <= 150, "{}", h.bytes());
    // The node's oldest went, not the newcomer's: a new topic keeps its message.
    let newcomer = publish(&h, "n", "fresh");
    assert!(matches!(
        h.read(
            "n",
            Since::After(Position {
                offset: 0,
                ..newcomer
            })
        ),
        Read::Ready {
            resume: Resume::Recovered { count: 1, .. },
            ..
        }
    ));
    assert!(h.bytes() <= 150, "{}", h.bytes());
    // A message larger than a topic may keep is sent, not kept: a resume from before it
    // is lost.
    let before = publish(&h, "c", "small");
    publish(&h, "c", &"y".repeat(200));
    assert!(matches!(
        h.read("c", Since::After(before)),
        Read::Ready {
            resume: Resume::Lost { .. },
            ..
        }
    ));
    assert!(h.gauge.bytes() as usize >= h.bytes());
}

#[test]
fn a_bridged_topic_waits_for_its_load_and_drops_duplicates() {
    let h = History::new(HistoryConfig::default(), true, Arc::new(Gauge::default()));
    assert!(matches!(h.read("t", Since::Now), Read::Loading));
    let mut loaded = None;
    h.load(
        "t",
        7,
        vec![
            (4, MessageKind::Text, b"d".to_vec()),
            (5, MessageKind::Text, b"e".to_vec()),
        ],
        |_, e| loaded = Some(e),
    );
    assert!(matches!(loaded, Some(Event::Loaded { at, .. }) if at == Position { epoch: 7, offset: 5 }));
    let Read::Ready { resume, frames, .. } = h.read("t", Since::After(Position { epoch: 7, offset: 3 }))
    else {
        panic!()
    };
    assert_eq!(payloads(&frames), ["4 d", "5 e"]);
    assert!(matches!(resume, Resume::Recovered { count: 2, .. }));
    let mut posted = 0;
    let at = |offset| Position { epoch: 7, offset };
    for offset in [5, 6, 6, 7] {
        let frame = SharedFrame::new(Box::from(&b"f"[..]), &h.gauge);
        h.append_at("t", MessageKind::Text, b"f", frame, at(offset), |_, _| {
            posted += 1
        });
    }
    assert_eq!(posted, 2, "5 and the second 6 were duplicates");
    // After 3 is now too old? No: 4..7 are kept.
    assert!(matches!(
        h.read("t", Since::After(at(3))),
        Read::Ready {
            resume: Resume::Recovered { count: 4, .. },
            ..
        }
    ));
    // A new epoch restarts the history there.
    let frame = SharedFrame::new(Box::from(&b"g"[..]), &h.gauge);
    h.append_at(
        "t",
        MessageKind::Text,
        b"g",
        frame,
        Position { epoch: 8, offset: 1 },
        |_, _| {},
    );
    assert!(matches!(
        h.read("t", Since::After(at(7))),
        Read::Ready {
            resume: Resume::Lost { at },
            ..
        } if at == Position { epoch: 8, offset: 1 }
    ));
    h.forget("t");
    assert_eq!(h.bytes(), 0);
}
