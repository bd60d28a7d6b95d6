//! The verdicts: what the server did compared with what the case expects, and the words that
//! describe it in a result.

use c10k::proto::close::parse_close_payload;

use super::Run;
use crate::check::case::{CloseWant, Want, show_bytes, size};

/// Judges the server's answer to the Close frame a script sent.
pub(super) fn judge_close_reply(want: CloseWant, payload: &[u8], run: &mut Run) {
    let parsed = parse_close_payload(payload);
    let code = close_code(payload);
    match want {
        CloseWant::Echo(sent) => match (&parsed, code) {
            (Err(e), _) => run.fail(format!("the server's Close frame is invalid: {e}")),
            (Ok(_), None) if sent.is_none() => {}
            (Ok(_), Some(1000)) => {}
            (Ok(_), Some(c)) if Some(c) == sent => {}
            (Ok(_), None) => run.non_strict(format!(
                "answered with an empty Close frame; the usual answer echoes the code {}",
                sent.unwrap_or(1000)
            )),
            // A valid code called a protocol error: only the codes registered after RFC 6455
            // (1012-1014) may be unknown to a server.
            (Ok(_), Some(1002)) if !sent.is_some_and(|c| (1012..=1014).contains(&c)) => run.fail(format!(
                "answered a valid Close frame ({}) with 1002, as if it were a protocol error",
                sent.map_or("empty".to_owned(), |c| c.to_string())
            )),
            (Ok(_), Some(c)) => run.non_strict(format!(
                "answered the Close frame with {c}; the usual answer echoes the code received or sends 1000"
            )),
        },
        CloseWant::Fail {
            code: want_code,
            sent,
        } => match (&parsed, code) {
            (Err(e), _) => run.fail(format!("the server's Close frame is invalid: {e}")),
            (Ok(_), Some(c)) if c == want_code => {}
            (Ok(_), Some(c)) if Some(c) == sent => {
                run.fail(format!(
                    "the server echoed a close code that may not be used ({c})"
                ));
            }
            (Ok(_), c) => run.non_strict(format!(
                "answered the invalid Close frame with {}; {want_code} is the code for this error",
                c.map_or("an empty Close frame".to_owned(), |c| c.to_string())
            )),
        },
    }
}

/// How a received message differs from the expected one, if it does.
pub(super) fn compare_message(want: &Want, text: bool, data: &[u8]) -> Option<String> {
    let (want_text, want_data) = match want {
        Want::Text(d) => (true, d),
        Want::Binary(d) => (false, d),
        Want::Pong(_) => return Some("expected a pong".to_owned()),
    };
    if want_text != text {
        return Some(format!(
            "the echo is a {} message; a {} message was sent",
            if text { "text" } else { "binary" },
            if want_text { "text" } else { "binary" }
        ));
    }
    if data == want_data.as_slice() {
        return None;
    }
    if data.len() != want_data.len() {
        return Some(format!(
            "the echo has {} bytes; {} were sent",
            data.len(),
            want_data.len()
        ));
    }
    let at = data
        .iter()
        .zip(want_data.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Some(format!(
        "the echo differs from what was sent at byte {at} ({:#04x} instead of {:#04x})",
        data[at], want_data[at]
    ))
}
pub(super) fn close_code(payload: &[u8]) -> Option<u16> {
    payload.first_chunk::<2>().map(|b| u16::from_be_bytes(*b))
}

pub(super) fn describe_close(payload: &[u8]) -> String {
    match payload {
        [] => "closed with an empty Close frame".to_owned(),
        [_] => "closed with a 1-byte Close frame".to_owned(),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            match std::str::from_utf8(reason) {
                Ok("") => format!("closed with {code}"),
                Ok(r) if r.chars().count() <= 60 => format!("closed with {code} {r:?}"),
                _ => format!("closed with {code} and a reason of {}", show_bytes(reason)),
            }
        }
    }
}

pub(super) fn describe_message(text: bool, data: &[u8]) -> String {
    format!(
        "sent a {} message of {}",
        if text { "text" } else { "binary" },
        size(data.len())
    )
}

pub(super) fn describe_wants(wants: &[Want]) -> String {
    let messages = wants.iter().filter(|w| !matches!(w, Want::Pong(_))).count();
    let pongs = wants.len() - messages;
    match (messages, pongs) {
        (m, 0) => format!("{m} echoed message{}", plural(m)),
        (0, p) => format!("{p} pong{}", plural(p)),
        (m, p) => format!("{m} echoed message{} and {p} pong{}", plural(m), plural(p)),
    }
}

pub(super) fn describe_wants_done(wants: &[Want]) -> String {
    let messages: Vec<&Want> = wants.iter().filter(|w| !matches!(w, Want::Pong(_))).collect();
    let pongs = wants.len() - messages.len();
    let mut parts = Vec::new();
    match messages.as_slice() {
        [] => {}
        [Want::Text(d)] => parts.push(format!("echoed the text ({})", size(d.len()))),
        [Want::Binary(d)] => parts.push(format!("echoed the binary ({})", size(d.len()))),
        m => parts.push(format!("echoed {} messages", m.len())),
    }
    match pongs {
        0 => {}
        1 => parts.push("answered with the pong".to_owned()),
        p => parts.push(format!("answered with {p} pongs")),
    }
    parts.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
