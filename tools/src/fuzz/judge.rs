//! The judge: what the peer under test did (a server; a client with `c10k fuzz --serve`),
//! compared with what the oracle allows, as it happens.
//!
//! A [`Judge`] is fed the peer's answers one by one (echoed messages, pongs, its Close frame,
//! the end of the connection, the end of the time bound) and decides a [`Outcome`] as soon as
//! the verdict is known. Pure: the driver feeds it, the tests feed it by hand.
//!
//! Order: echoes must come back in the order the messages were sent, pongs in the order of
//! their pings (a pong may stand for earlier pings, RFC 6455 section 5.5.3), but pongs and echoes
//! may overtake each other (a server answers pings in its protocol layer and echoes in its
//! application). An unsolicited pong is allowed (section 5.5.3) unless the input had to fail the
//! connection: then it answers a frame that must be rejected.

use c10k::proto::close::parse_close_payload;

use super::oracle::{End, Expect};
use crate::check::Verdict;

/// How one sequence ended: the verdict, a short stable kind for grouping, and the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// PASS, NON-STRICT or FAIL, as in `c10k check`.
    pub verdict: Verdict,
    /// What went wrong, as a short slug (`wrong-echo`, `accepted-invalid`, `no-progress`...).
    pub kind: &'static str,
    /// What the oracle expected, in general terms (`echo`, `Close answer`, `fail 1007 (invalid
    /// UTF-8)`): with `kind`, what findings are grouped by.
    pub cause: String,
    /// What the oracle expected, in detail ("2 echoes, fail with 1007: invalid UTF-8").
    pub expected: String,
    /// What the server did, in words.
    pub reason: String,
}

impl Outcome {
    /// A PASS.
    pub fn pass(cause: String, expected: String) -> Self {
        Self {
            verdict: Verdict::Pass,
            kind: "pass",
            cause,
            expected,
            reason: String::new(),
        }
    }

    /// A verdict of `kind`.
    pub fn new(
        verdict: Verdict,
        kind: &'static str,
        cause: String,
        expected: String,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            verdict,
            kind,
            cause,
            expected,
            reason: reason.into(),
        }
    }
}

/// Judges one allowed expectation.
#[derive(Debug, Clone)]
pub struct Judge {
    expect: Expect,
    echoed: usize,
    ponged: usize,
    /// Every byte of the sequence was written: a connection that nothing ends may be judged.
    sent: bool,
    decided: Option<Outcome>,
}

impl Judge {
    /// A judge of `expect`.
    pub fn new(expect: Expect) -> Self {
        Self {
            expect,
            echoed: 0,
            ponged: 0,
            sent: false,
            decided: None,
        }
    }

    /// Every byte was written: when nothing ends the connection, the judge decides PASS once
    /// every answer is in (it may already be).
    pub fn all_sent(&mut self) {
        self.sent = true;
        self.check_complete();
    }

    /// The outcome, once known.
    pub fn decided(&self) -> Option<&Outcome> {
        self.decided.as_ref()
    }

    fn expected(&self) -> String {
        let e = &self.expect;
        let mut s = match (e.echoes.len(), e.pongs.len()) {
            (0, 0) => String::new(),
            (m, 0) => format!("{m} echo{}, ", if m == 1 { "" } else { "es" }),
            (0, p) => format!("{p} pong{}, ", if p == 1 { "" } else { "s" }),
            (m, p) => format!(
                "{m} echo{} and {p} pong{}, ",
                if m == 1 { "" } else { "es" },
                if p == 1 { "" } else { "s" }
            ),
        };
        s.push_str(&e.end.describe());
        if let Some(note) = e.note {
            s.push_str(" [allowed: ");
            s.push_str(note);
            s.push(']');
        }
        s
    }

    fn decide(&mut self, verdict: Verdict, kind: &'static str, reason: impl Into<String>) {
        if self.decided.is_none() {
            let expected = self.expected();
            let cause = self.expect.end.class();
            self.decided = Some(if verdict == Verdict::Pass {
                Outcome::pass(cause, expected)
            } else {
                Outcome::new(verdict, kind, cause, expected, reason)
            });
        }
    }

    fn missing_echoes(&self) -> usize {
        self.expect.echoes.len() - self.echoed
    }

    fn missing_pong(&self) -> bool {
        self.ponged < self.expect.pongs.len()
    }

    fn check_complete(&mut self) {
        if self.sent && self.expect.end == End::Open && self.missing_echoes() == 0 && !self.missing_pong() {
            self.decide(Verdict::Pass, "pass", "");
        }
    }

    /// The peer under test (a server, or a client with `--serve`) sent a data message.
    pub fn message(&mut self, text: bool, data: &[u8]) {
        if self.decided.is_some() {
            return;
        }
        let Some((want_text, want)) = self.expect.echoes.get(self.echoed) else {
            let what = format!("sent a {} message of {} bytes", kind(text), data.len());
            return match &self.expect.end {
                End::Fail { code, why, .. } => self.decide(
                    Verdict::Fail,
                    "accepted-invalid",
                    format!("{what} although the input must fail the connection with {code} ({why})"),
                ),
                _ => self.decide(
                    Verdict::Fail,
                    "unexpected-message",
                    format!("{what} that echoes nothing sent"),
                ),
            };
        };
        if *want_text != text || want.as_slice() != data {
            let why = if *want_text != text {
                format!(
                    "the echo is a {} message; a {} message was sent",
                    kind(text),
                    kind(*want_text)
                )
            } else if want.len() != data.len() {
                format!("the echo has {} bytes; {} were sent", data.len(), want.len())
            } else {
                let at = data.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                format!("the echo differs from what was sent at byte {at}")
            };
            return self.decide(
                Verdict::Fail,
                "wrong-echo",
                format!("message {}: {why}", self.echoed + 1),
            );
        }
        self.echoed += 1;
        self.check_complete();
    }

    /// The peer sent a pong.
    pub fn pong(&mut self, data: &[u8]) {
        if self.decided.is_some() {
            return;
        }
        if let Some(i) = self.expect.pongs[self.ponged..].iter().position(|p| p == data) {
            self.ponged += i + 1;
            return self.check_complete();
        }
        if let End::Fail { code, why, .. } = &self.expect.end
            && !self.expect.optional_pongs.iter().any(|p| p == data)
        {
            let reason = format!(
                "sent a pong of {} bytes that answers no valid ping, although the input must fail the connection with {code} ({why})",
                data.len()
            );
            self.decide(Verdict::Fail, "accepted-invalid", reason);
        }
    }

    /// The peer sent a Close frame with `payload` (not yet checked).
    pub fn close(&mut self, payload: &[u8]) {
        if self.decided.is_some() {
            return;
        }
        let parsed = parse_close_payload(payload);
        let code = payload.first_chunk::<2>().map(|b| u16::from_be_bytes(*b));
        let shown = code.map_or("an empty Close frame".to_owned(), |c| c.to_string());
        if let Err(e) = parsed {
            return self.decide(
                Verdict::Fail,
                "invalid-close",
                format!("closed with an invalid Close frame ({e}), payload {payload:02x?}"),
            );
        }
        match self.expect.end.clone() {
            End::Open => self.decide(
                Verdict::Fail,
                "unexpected-close",
                format!("closed with {shown} although nothing in the input ends the connection"),
            ),
            End::Close { sent } => {
                if self.missing_echoes() > 0 {
                    // RFC 6455 5.5.1 lets a server answer a Close "as soon as practical": an echo
                    // the application had not sent yet is lost, which is allowed, not ideal.
                    let n = self.missing_echoes();
                    return self.decide(
                        Verdict::NonStrict,
                        "close-before-echo",
                        format!("answered the Close before echoing {n} message(s) received before it"),
                    );
                }
                if self.missing_pong() {
                    return self.decide(Verdict::Fail, "missing-pong", "answered the Close without answering the last ping");
                }
                match code {
                    None | Some(1000) => self.decide(Verdict::Pass, "pass", ""),
                    Some(c) if Some(c) == sent => self.decide(Verdict::Pass, "pass", ""),
                    Some(1002) if !sent.is_some_and(|c| (1012..=1014).contains(&c)) => self.decide(
                        Verdict::Fail,
                        "valid-close-refused",
                        format!("answered a valid Close frame ({}) with 1002", sent.map_or("empty".to_owned(), |c| c.to_string())),
                    ),
                    Some(c) => self.decide(
                        Verdict::NonStrict,
                        "other-close-code",
                        format!("answered the Close frame with {c}; the usual answer echoes the code or sends 1000"),
                    ),
                }
            }
            End::Fail { code: want, why, sent_close } => match code {
                Some(c) if c == want => self.decide(Verdict::Pass, "pass", ""),
                Some(c) if Some(c) == sent_close || c == 1000 => self.decide(
                    Verdict::Fail,
                    "accepted-invalid",
                    format!("closed with {c} as after a normal close; the input must fail the connection with {want} ({why})"),
                ),
                _ => self.decide(
                    Verdict::NonStrict,
                    "other-close-code",
                    format!("closed with {shown}; {want} is the code for this error ({why})"),
                ),
            },
        }
    }

    /// The peer sent something the other end may not accept (a server's masked frame, a client's unmasked one, bad UTF-8...).
    pub fn invalid_frame(&mut self, why: &str) {
        self.decide(
            Verdict::Fail,
            "invalid-frame",
            format!("sent an invalid frame: {why}"),
        );
    }

    /// The connection ended (FIN or reset) with no Close frame from the server.
    pub fn dropped(&mut self, how: &str) {
        if self.decided.is_some() {
            return;
        }
        let missing = self.missing_echoes();
        match &self.expect.end {
            End::Fail { code, .. } => {
                let code = *code;
                self.decide(
                    Verdict::NonStrict,
                    "dropped-without-close",
                    format!("{how} without a Close frame; {code} is the code for this error"),
                );
            }
            _ if missing > 0 => self.decide(
                Verdict::Fail,
                "dropped-before-echo",
                format!("{how} before echoing {missing} message(s)"),
            ),
            _ if self.missing_pong() => self.decide(
                Verdict::Fail,
                "missing-pong",
                format!("{how} without answering the last ping"),
            ),
            End::Close { .. } => self.decide(
                Verdict::NonStrict,
                "dropped-without-close",
                format!("{how} without answering the Close frame"),
            ),
            End::Open => self.decide(Verdict::Pass, "pass", ""),
        }
    }

    /// The time bound passed.
    pub fn timed_out(&mut self, bound_ms: u64) {
        if self.decided.is_some() {
            return;
        }
        if let Some(why) = self.expect.may_stall {
            return self.decide(
                Verdict::NonStrict,
                "stalled",
                format!("no answer within {bound_ms} ms: {why}"),
            );
        }
        let waiting = match (&self.expect.end, self.missing_echoes(), self.missing_pong()) {
            (_, n, _) if n > 0 => format!("{n} echo(es)"),
            (_, _, true) => "a pong".to_owned(),
            (End::Close { .. }, _, _) => "the Close answer".to_owned(),
            (End::Fail { code, .. }, _, _) => format!("the Close frame with {code}"),
            (End::Open, _, _) => "nothing".to_owned(),
        };
        self.decide(
            Verdict::Fail,
            "no-progress",
            format!("no progress within {bound_ms} ms: still waiting for {waiting}"),
        );
    }
}

fn kind(text: bool) -> &'static str {
    if text { "text" } else { "binary" }
}

/// Judges a sequence with every allowed expectation at once: the best verdict wins.
#[derive(Debug, Clone)]
pub struct Judges(pub Vec<Judge>);

impl Judges {
    /// Applies `f` to every judge still undecided.
    pub fn each(&mut self, mut f: impl FnMut(&mut Judge)) {
        for j in &mut self.0 {
            if j.decided.is_none() {
                f(j);
            }
        }
    }

    /// The outcome once every judge has decided (or one has decided PASS): the best.
    pub fn outcome(&self) -> Option<Outcome> {
        if let Some(pass) = self
            .0
            .iter()
            .filter_map(Judge::decided)
            .find(|o| o.verdict == Verdict::Pass)
        {
            return Some(pass.clone());
        }
        if self.0.iter().any(|j| j.decided.is_none()) {
            return None;
        }
        self.0
            .iter()
            .filter_map(Judge::decided)
            .min_by_key(|o| o.verdict)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(echoes: &[&[u8]], pongs: &[&[u8]], end: End) -> Expect {
        Expect {
            echoes: echoes.iter().map(|e| (true, e.to_vec())).collect(),
            pongs: pongs.iter().map(|p| p.to_vec()).collect(),
            optional_pongs: Vec::new(),
            end,
            note: None,
            may_stall: None,
        }
    }

    const FAIL_1007: End = End::Fail {
        code: 1007,
        why: "invalid UTF-8",
        sent_close: None,
    };

    #[test]
    fn echoes_then_the_close_answer_pass() {
        let mut j = Judge::new(expect(&[b"a", b"b"], &[b"p"], End::Close { sent: Some(1000) }));
        j.pong(b"p");
        j.message(true, b"a");
        j.message(true, b"b");
        assert!(j.decided().is_none());
        j.close(&1000u16.to_be_bytes());
        assert_eq!(j.decided().unwrap().verdict, Verdict::Pass);
    }

    #[test]
    fn a_wrong_echo_fails_at_once() {
        let mut j = Judge::new(expect(&[b"abc"], &[], End::Close { sent: None }));
        j.message(true, b"abd");
        let o = j.decided().unwrap();
        assert_eq!((o.verdict, o.kind), (Verdict::Fail, "wrong-echo"));
    }

    #[test]
    fn echoing_what_must_fail_the_connection_is_accepting_invalid_input() {
        let mut j = Judge::new(expect(&[], &[], FAIL_1007));
        j.message(true, b"\xff");
        assert_eq!(j.decided().unwrap().kind, "accepted-invalid");
    }

    #[test]
    fn dropping_instead_of_failing_is_non_strict_and_a_wrong_code_too() {
        let mut j = Judge::new(expect(&[], &[], FAIL_1007));
        j.dropped("closed the connection");
        assert_eq!(j.decided().unwrap().verdict, Verdict::NonStrict);
        let mut j = Judge::new(expect(&[], &[], FAIL_1007));
        j.close(&1002u16.to_be_bytes());
        assert_eq!(j.decided().unwrap().verdict, Verdict::NonStrict);
        let mut j = Judge::new(expect(&[], &[], FAIL_1007));
        j.close(&1000u16.to_be_bytes());
        assert_eq!(j.decided().unwrap().verdict, Verdict::Fail);
    }

    #[test]
    fn a_pong_may_stand_for_earlier_pings_but_the_last_must_be_answered() {
        let mut j = Judge::new(expect(&[], &[b"1", b"2"], End::Close { sent: None }));
        j.pong(b"2");
        j.close(&[]);
        assert_eq!(j.decided().unwrap().verdict, Verdict::Pass);
        let mut j = Judge::new(expect(&[], &[b"1", b"2"], End::Close { sent: None }));
        j.pong(b"1");
        j.close(&[]);
        assert_eq!(j.decided().unwrap().kind, "missing-pong");
    }

    #[test]
    fn an_echoed_invalid_close_code_fails() {
        let mut j = Judge::new(expect(
            &[],
            &[],
            End::Fail {
                code: 1002,
                why: "invalid close code",
                sent_close: Some(1005),
            },
        ));
        j.close(&1005u16.to_be_bytes());
        assert_eq!(j.decided().unwrap().kind, "invalid-close");
    }

    #[test]
    fn silence_is_no_progress_and_the_best_alternative_wins() {
        let mut strict = Judge::new(expect(
            &[],
            &[],
            End::Fail {
                code: 1002,
                why: "x",
                sent_close: None,
            },
        ));
        strict.timed_out(100);
        assert_eq!(strict.decided().unwrap().kind, "no-progress");
        let mut lenient = Judge::new(expect(&[], &[], End::Open));
        assert!(lenient.decided().is_none());
        lenient.all_sent();
        let judges = Judges(vec![strict, lenient]);
        assert_eq!(judges.outcome().unwrap().verdict, Verdict::Pass);
    }
}
