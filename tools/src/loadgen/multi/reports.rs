//! The children's reports, read back from the JSON line each prints, and merged into one: counts
//! and rates add up, and the latency percentiles come from the merged histogram buckets.

use super::MAX_ERROR_SAMPLES;
use super::json;
use crate::loadgen::timeline::{self, Interval};
use crate::loadgen::{Percentiles, Report, Scenario, add_buckets, histogram_buckets, latency_histogram};

/// Sums the reports of processes that ran the same scenario at the same time, each tagged with
/// its process index (for the error samples). Counts, rates and loads add up; the latency
/// percentiles come from the merged histogram buckets, so they are exact.
pub fn merge(parts: &[(usize, Report)]) -> Result<Report, String> {
    let mut latency = latency_histogram();
    let mut handshake = latency_histogram();
    let mut out = Report {
        saturated: "neither",
        ..Report::default()
    };
    let mut samples = Vec::new();
    let mut pings = std::collections::BTreeMap::new();
    for (i, r) in parts {
        out.scenario = r.scenario;
        out.connections += r.connections;
        out.connected += r.connected;
        out.peak_concurrent += r.peak_concurrent;
        out.payload = r.payload;
        out.binary = r.binary;
        out.window_s = out.window_s.max(r.window_s);
        out.messages += r.messages;
        out.messages_per_s += r.messages_per_s;
        out.bytes_per_s += r.bytes_per_s;
        out.handshakes_per_s += r.handshakes_per_s;
        out.tls |= r.tls;
        out.tls_resumed += r.tls_resumed;
        if out.tls_params.is_empty() {
            out.tls_params.clone_from(&r.tls_params);
        }
        out.connect_s = out.connect_s.max(r.connect_s);
        out.survivors += r.survivors;
        out.completed += r.completed;
        out.errors += r.errors;
        out.wrong_echoes += r.wrong_echoes;
        out.late_sends += r.late_sends;
        out.max_send_lag_us = out.max_send_lag_us.max(r.max_send_lag_us);
        out.generator_cores += r.generator_cores;
        out.threads += r.threads;
        samples.extend(r.error_samples.iter().map(|e| format!("load process {i}: {e}")));
        add_buckets(&mut latency, &r.latency_hist)?;
        add_buckets(&mut handshake, &r.handshake_hist)?;
        timeline::add_messages(&mut out.timeline, &r.timeline);
        if let Some(n) = r.going_away {
            *out.going_away.get_or_insert(0) += n;
        }
        out.drain_s = match (out.drain_s, r.drain_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for &(second, n) in &r.pings_per_s {
            *pings.entry(second).or_insert(0) += n;
        }
    }
    out.pings_per_s = pings.into_iter().collect();
    samples.truncate(MAX_ERROR_SAMPLES);
    out.error_samples = samples;
    out.latency = Percentiles::of(&latency);
    out.handshake_latency = Percentiles::of(&handshake);
    out.latency_hist = histogram_buckets(&latency);
    out.handshake_hist = histogram_buckets(&handshake);
    Ok(out)
}

impl Report {
    /// Reads back what [`Report::json_with_histograms`] (or [`Report::json`]) wrote: every count,
    /// rate and histogram bucket. Percentiles are recomputed from the buckets when they are there.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v = json::parse(text)?;
        let num = |k: &str| v.get(k).and_then(json::Value::as_f64).unwrap_or(0.0);
        let int = |k: &str| v.get(k).and_then(json::Value::as_u64).unwrap_or(0);
        let buckets = |k: &str| -> Result<Vec<(u64, u64)>, String> {
            let Some(list) = v.get(k).and_then(json::Value::as_array) else {
                return Ok(Vec::new());
            };
            list.iter()
                .map(|pair| match pair.as_array() {
                    Some([a, b]) => a.as_u64().zip(b.as_u64()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{k}: not a list of [value, count] pairs"))
        };
        let name = v.get("scenario").and_then(json::Value::as_str).unwrap_or("");
        let scenario = [
            Scenario::Echo,
            Scenario::Rate,
            Scenario::Connect,
            Scenario::Hold,
            Scenario::TestEcho,
            Scenario::Slowloris,
        ]
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("unknown scenario {name:?}"))?;
        let mut r = Report {
            scenario: scenario.name(),
            connections: int("connections") as usize,
            connected: int("connected"),
            peak_concurrent: int("peak_concurrent"),
            payload: int("payload") as usize,
            binary: v.get("binary").and_then(json::Value::as_bool).unwrap_or(false),
            window_s: num("window_s"),
            messages: int("messages"),
            messages_per_s: num("messages_per_s"),
            bytes_per_s: num("bytes_per_s"),
            handshakes_per_s: num("handshakes_per_s"),
            tls: v.get("tls").and_then(json::Value::as_bool).unwrap_or(false),
            tls_resumed: int("tls_resumed"),
            tls_params: v
                .get("tls_params")
                .and_then(json::Value::as_str)
                .unwrap_or("")
                .to_owned(),
            connect_s: num("connect_s"),
            survivors: int("survivors"),
            completed: int("completed"),
            errors: int("errors"),
            wrong_echoes: int("wrong_echoes"),
            late_sends: int("late_sends"),
            max_send_lag_us: num("max_send_lag_us"),
            error_samples: v
                .get("error_samples")
                .and_then(json::Value::as_array)
                .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            generator_cores: num("generator_cores"),
            threads: int("threads") as usize,
            saturated: "neither",
            latency_hist: buckets("latency_hist")?,
            handshake_hist: buckets("handshake_hist")?,
            timeline: intervals(v.get("timeline"))?,
            going_away: v.get("going_away").and_then(json::Value::as_u64),
            drain_s: v.get("drain_s").and_then(json::Value::as_f64),
            drain_started_unix: v.get("drain_started_unix").and_then(json::Value::as_f64),
            pings_per_s: buckets("pings_per_s")?,
            ..Report::default()
        };
        for (hist, pct) in [
            (&r.latency_hist, &mut r.latency),
            (&r.handshake_hist, &mut r.handshake_latency),
        ] {
            if !hist.is_empty() {
                let mut h = latency_histogram();
                add_buckets(&mut h, hist)?;
                *pct = Percentiles::of(&h);
            }
        }
        Ok(r)
    }
}

/// The `timeline` array of a report: `[end_s, messages, server_cpu_us, generator_cpu_us]` each.
fn intervals(v: Option<&json::Value>) -> Result<Vec<Interval>, String> {
    let Some(list) = v.and_then(json::Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|i| match i.as_array() {
            Some([end, messages, server, generator]) => Some(Interval {
                end_s: end.as_f64()?,
                messages: messages.as_u64()?,
                server_cpu_us: server.as_u64(),
                generator_cpu_us: generator.as_u64(),
            }),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            "timeline: not a list of [end_s, messages, server_cpu_us, generator_cpu_us]".to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(seed: u64, n: usize, scale: u64) -> hdrhistogram::Histogram<u64> {
        let mut h = latency_histogram();
        let mut x = seed | 1;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over several orders of magnitude, like real latencies.
            let v = 1 + (x % scale) * (1 + (x >> 60));
            h.record(v).unwrap();
        }
        h
    }

    fn part(h: &hdrhistogram::Histogram<u64>, messages: u64) -> Report {
        Report {
            scenario: "echo",
            messages,
            latency_hist: histogram_buckets(h),
            ..Report::default()
        }
    }

    #[test]
    fn merged_buckets_give_the_exact_percentiles_of_the_merged_histograms() {
        let a = histogram(1, 20_000, 50_000);
        let b = histogram(2, 5_000, 5_000_000);
        let c = histogram(3, 1, 70_000_000_000);
        let mut direct = a.clone();
        direct.add(&b).unwrap();
        direct.add(&c).unwrap();

        // Through the JSON a child prints, as the coordinator reads it.
        let parts: Vec<(usize, Report)> = [(&a, 20_000), (&b, 5_000), (&c, 1)]
            .into_iter()
            .enumerate()
            .map(|(i, (h, n))| (i, Report::from_json(&part(h, n).json_with_histograms()).unwrap()))
            .collect();
        let merged = merge(&parts).unwrap();

        assert_eq!(merged.messages, 25_001);
        assert_eq!(merged.latency, Percentiles::of(&direct));
        assert_eq!(merged.latency_hist, histogram_buckets(&direct));
        let mut rebuilt = latency_histogram();
        add_buckets(&mut rebuilt, &merged.latency_hist).unwrap();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                rebuilt.value_at_quantile(q),
                direct.value_at_quantile(q),
                "quantile {q}"
            );
        }
        assert_eq!(rebuilt.len(), direct.len());
        assert_eq!(rebuilt.max(), direct.max());
        assert_eq!(rebuilt.min(), direct.min());
    }

    #[test]
    fn report_survives_its_json_with_histograms() {
        let h = histogram(7, 1000, 1_000_000);
        let r = Report {
            scenario: "testecho",
            connections: 15_000,
            connected: 14_999,
            peak_concurrent: 14_999,
            messages: 44_997,
            messages_per_s: 1234.5,
            completed: 14_999,
            errors: 1,
            error_samples: vec!["client 3 (thread 0): server closed with 1011 \"\\\"odd\\\"\"\n".to_owned()],
            threads: 2,
            generator_cores: 0.25,
            latency: Percentiles::of(&h),
            latency_hist: histogram_buckets(&h),
            ..Report::default()
        };
        let back = Report::from_json(&r.json_with_histograms()).unwrap();
        assert_eq!(back.scenario, "testecho");
        assert_eq!(back.connections, 15_000);
        assert_eq!(back.connected, 14_999);
        assert_eq!(back.messages, 44_997);
        assert_eq!(back.completed, 14_999);
        assert_eq!(back.errors, 1);
        assert_eq!(back.error_samples, r.error_samples);
        assert_eq!(back.threads, 2);
        assert_eq!(back.latency, r.latency);
        assert_eq!(back.latency_hist, r.latency_hist);
        assert!((back.messages_per_s - 1234.5).abs() < 0.05);
    }

    #[test]
    fn timelines_survive_their_json_and_add_up_over_processes() {
        let r = Report {
            scenario: "echo",
            timeline: vec![
                Interval {
                    end_s: 0.1,
                    messages: 5,
                    server_cpu_us: Some(100),
                    generator_cpu_us: None,
                },
                Interval {
                    end_s: 0.2,
                    messages: 7,
                    server_cpu_us: None,
                    generator_cpu_us: Some(3),
                },
            ],
            ..Report::default()
        };
        let back = Report::from_json(&r.json()).unwrap();
        assert_eq!(back.timeline, r.timeline);
        let merged = merge(&[(0, back.clone()), (1, back)]).unwrap();
        let counts: Vec<u64> = merged.timeline.iter().map(|i| i.messages).collect();
        assert_eq!(counts, [10, 14]);
    }

    #[test]
    fn slowloris_and_hold_reports_survive_their_json() {
        for scenario in ["slowloris", "hold"] {
            let r = Report {
                scenario,
                connections: 2000,
                connected: 6000,
                completed: 4000,
                survivors: 2000,
                messages: 2000,
                connect_s: 1.25,
                ..Report::default()
            };
            let back = Report::from_json(&r.json_with_histograms()).unwrap();
            assert_eq!(back.scenario, scenario);
            assert_eq!(
                (back.connected, back.completed, back.survivors, back.messages),
                (6000, 4000, 2000, 2000)
            );
            assert!((back.connect_s - 1.25).abs() < 1e-9);
            let merged = merge(&[(0, back.clone()), (1, back)]).unwrap();
            assert_eq!(merged.completed, 8000);
            assert!(
                (merged.connect_s - 1.25).abs() < 1e-9,
                "the slowest process's time"
            );
        }
    }
}
