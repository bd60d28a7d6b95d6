//! A run's figures as a page people look at: `c10k bench --report FILE.html` (or `.svg`).
//!
//! The page is self-contained: inline SVG drawn here, a few lines of inline CSS, no script and
//! nothing fetched. It shows the run's parameters and summary, the latency percentile curve (from
//! the recorded histogram buckets, so it is exact to the histogram's three significant digits),
//! and messages/s and CPU use (server and generator) over the measured window, from the
//! [`timeline`]. An `.svg` file holds the same charts and text in one picture.

use std::fmt::Write as _;

use super::report::Report;
use super::timeline;
use super::{Options, Scenario};

/// Width of one chart, in pixels.
const WIDTH: f64 = 760.0;
/// Height of one chart.
const HEIGHT: f64 = 300.0;
/// Margins inside a chart: left (tick labels), right, top (title), bottom (axis label).
const MARGIN: (f64, f64, f64, f64) = (72.0, 24.0, 34.0, 46.0);
/// Colours of the series, in order (server, generator, ...).
const COLOURS: [&str; 4] = ["#1f5fa8", "#d0641a", "#2b8a3e", "#8a2be2"];

/// The run's parameters, as (name, value) rows.
pub fn parameters(opts: &Options, processes: usize) -> Vec<(&'static str, String)> {
    let secs = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
    let mut rows = vec![
        ("scenario", opts.scenario.name().to_owned()),
        ("url", opts.url.clone()),
        ("connections", opts.connections.to_string()),
        (
            "payload",
            format!(
                "{} B {}{}",
                opts.payload,
                if opts.binary { "binary" } else { "text" },
                if opts.deflate { ", permessage-deflate" } else { "" }
            ),
        ),
    ];
    #[cfg(feature = "tls")]
    if opts.url.starts_with("wss://") {
        let resume = if opts.tls_resume {
            "session resumption on (one cache per load thread)"
        } else {
            "full handshakes (no session resumption)"
        };
        rows.push(("TLS", resume.to_owned()));
    }
    match opts.scenario {
        Scenario::Echo => rows.push(("in flight per connection", opts.in_flight.to_string())),
        Scenario::Rate | Scenario::Fanout => rows.push(("rate", format!("{} msg/s", opts.rate))),
        _ => {}
    }
    rows.push(("warm-up", secs(opts.warmup)));
    rows.push(("window", secs(opts.duration)));
    rows.push(("load threads", opts.threads.to_string()));
    rows.push(("load processes", processes.to_string()));
    if !opts.sources.is_empty() {
        let list: Vec<String> = opts.sources.iter().map(ToString::to_string).collect();
        rows.push(("source addresses", list.join(", ")));
    }
    rows.push((
        "server CPU",
        opts.server_pid.map_or_else(
            || "not measured (no --server-pid)".to_owned(),
            |p| format!("measured from /proc (pid {p} and its children)"),
        ),
    ));
    rows.push((
        "sampled every",
        format!("{} ms", timeline::interval_for(opts.duration).as_millis()),
    ));
    rows.push(("generator", format!("c10k bench {}", env!("CARGO_PKG_VERSION"))));
    rows
}

/// The summary figures of a report, as (name, value) rows.
fn figures(r: &Report) -> Vec<(&'static str, String)> {
    let mut rows = vec![(
        "connected",
        format!(
            "{} of {} (peak {} at once, in {:.2} s)",
            r.connected, r.connections, r.peak_concurrent, r.connect_s
        ),
    )];
    rows.push((
        "messages",
        format!(
            "{} in {:.2} s: {:.0} msg/s, {:.2} MB/s",
            r.messages,
            r.window_s,
            r.messages_per_s,
            r.bytes_per_s / 1e6
        ),
    ));
    let p = &r.latency;
    if p.count > 0 {
        rows.push((
            "round trip",
            format!(
                "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
                us(p.p50),
                us(p.p90),
                us(p.p99),
                us(p.p999),
                us(p.max)
            ),
        ));
    }
    if let Some(c) = r.server_cpu_us_per_msg {
        rows.push(("server CPU per message", format!("{c:.2} µs")));
    }
    if let (Some(c), Some(b)) = (r.server_cores, r.server_busiest_thread) {
        rows.push((
            "server load",
            format!("{:.0}% of a core (busiest thread {:.0}%)", c * 100.0, b * 100.0),
        ));
    }
    rows.push((
        "generator load",
        format!(
            "{:.0}% of a core over {} thread{}",
            r.generator_cores * 100.0,
            r.threads,
            if r.threads == 1 { "" } else { "s" }
        ),
    ));
    if r.server_cores.is_some() {
        rows.push(("saturated", r.saturated.to_owned()));
    }
    rows.push((
        "errors",
        format!("{} ({} wrong echoes)", r.errors, r.wrong_echoes),
    ));
    rows
}

/// A latency in microseconds, in the unit that suits it.
fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

fn title(r: &Report) -> String {
    format!(
        "c10k bench {}: {} connections, {} B {}",
        r.scenario,
        r.connections,
        r.payload,
        if r.binary { "binary" } else { "text" }
    )
}

/// The report as a self-contained HTML page.
pub fn html(r: &Report, params: &[(&str, String)]) -> String {
    let mut s = String::with_capacity(32 << 10);
    let t = esc(&title(r));
    let _ = write!(
        s,
        concat!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n",
            "<style>\nbody {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 820px; }}\n",
            "h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}\n",
            "table {{ border-collapse: collapse; }} td {{ padding: 2px 12px 2px 0; vertical-align: top; }}\n",
            "td:first-child {{ color: #555; }} figure {{ margin: 16px 0; }}\n",
            "svg text {{ font: 12px system-ui, sans-serif; fill: #333; }} svg .title {{ font-size: 14px; font-weight: 600; }}\n",
            "</style>\n</head>\n<body>\n<h1>{}</h1>\n"
        ),
        t, t
    );
    for (h, rows) in [("Parameters", params.to_vec()), ("Figures", figures(r))] {
        let _ = writeln!(s, "<h2>{h}</h2>\n<table class=\"{}\">", h.to_lowercase());
        for (k, v) in rows {
            let _ = writeln!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Charts</h2>\n");
    for chart in charts(r) {
        let _ = writeln!(s, "<figure>\n{chart}\n</figure>");
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// The report as one SVG picture: the title, the parameters and figures, then the charts.
pub fn svg(r: &Report, params: &[(&str, String)]) -> String {
    let rows: Vec<(&str, String)> = params.iter().cloned().chain(figures(r)).collect();
    let line = 17.0;
    let text_h = 40.0 + line * rows.len() as f64 + 10.0;
    let charts = charts(r);
    let total_h = text_h + (HEIGHT + 10.0) * charts.len() as f64;
    let mut s = String::with_capacity(32 << 10);
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{total_h}\" viewBox=\"0 0 {WIDTH} {total_h}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"600\">{}</text>",
        esc(&title(r))
    );
    for (i, (k, v)) in rows.iter().enumerate() {
        let y = 48.0 + line * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{y}\" fill=\"#555\">{}</text><text x=\"190\" y=\"{y}\">{}</text>",
            esc(k),
            esc(v)
        );
    }
    for (i, c) in charts.iter().enumerate() {
        let y = text_h + (HEIGHT + 10.0) * i as f64;
        // Each chart is an <svg> of its own: placed by its x and y.
        let _ = writeln!(
            s,
            "{}",
            c.replacen("<svg ", &format!("<svg x=\"0\" y=\"{y}\" "), 1)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The three charts: latency percentiles, messages/s over time, CPU over time.
fn charts(r: &Report) -> Vec<String> {
    vec![latency_chart(r), messages_chart(r), cpu_chart(r)]
}

/// The latency percentile curve: latency (y) against the percentile (x, on the scale of
/// 1 / (1 - q), so that 90%, 99%, 99.9%, ... are evenly spaced), from the histogram buckets.
fn latency_chart(r: &Report) -> String {
    let total: u64 = r.latency_hist.iter().map(|b| b.1).sum();
    let name = if r.scenario == "fanout" {
        "Publish-to-delivery latency by percentile"
    } else {
        "Round-trip latency by percentile"
    };
    if total == 0 {
        return empty_chart(name, "no latency was recorded in this run");
    }
    // Decades of the x axis: as many as the samples resolve (the last quantile with a sample of
    // its own is 1 - 1/total); the highest bucket is drawn at the right edge.
    let decades = (total as f64).log10().floor().clamp(1.0, 6.0);
    let x_of = |q: f64| (1.0 / (1.0 - q).max(10f64.powf(-decades))).log10();
    let max_us = r.latency_hist.last().map_or(1, |b| b.0) as f64 / 1000.0;
    let (scale, unit) = if max_us >= 10_000.0 {
        (1000.0, "ms")
    } else {
        (1.0, "µs")
    };
    let mut points = Vec::with_capacity(r.latency_hist.len() * 2);
    let mut seen = 0u64;
    for &(v_ns, n) in &r.latency_hist {
        let v = v_ns as f64 / 1000.0 / scale;
        points.push((x_of(seen as f64 / total as f64), v));
        seen += n;
        points.push((x_of(seen as f64 / total as f64), v));
    }
    let x_ticks: Vec<(f64, String)> = (0..=decades as u32)
        .map(|d| {
            let label = match d {
                0 => "0%".to_owned(),
                d => format!("{}%", 100.0 - 100.0 / 10f64.powi(d as i32)),
            };
            (f64::from(d), label)
        })
        .collect();
    let (y_max, y_ticks) = nice_ticks(max_us / scale);
    let p = &r.latency;
    let marks: Vec<(f64, f64, String)> = [
        (0.5, p.p50, "p50"),
        (0.99, p.p99, "p99"),
        (0.999, p.p999, "p99.9"),
    ]
    .into_iter()
    .filter(|(q, _, _)| x_of(*q) <= decades)
    .map(|(q, v, l)| (x_of(q), v / scale, format!("{l} {}", us(v))))
    .collect();
    chart(&Chart {
        title: &format!("{name} ({total} samples)"),
        x: Axis {
            label: "percentile",
            min: 0.0,
            max: decades,
            ticks: x_ticks,
        },
        y: Axis {
            label: &format!("latency ({unit})"),
            min: 0.0,
            max: y_max,
            ticks: y_ticks,
        },
        series: &[Series {
            name: "latency",
            colour: COLOURS[0],
            points,
        }],
        marks: &marks,
    })
}

/// Messages per second, interval by interval.
fn messages_chart(r: &Report) -> String {
    let name = "Messages per second over the window";
    let rates = timeline::rates(&r.timeline);
    if rates.is_empty() {
        return empty_chart(name, "this scenario has no measured window");
    }
    let points = steps(&rates, |x| Some(x.messages_per_s));
    let peak = rates.iter().map(|x| x.messages_per_s).fold(0.0, f64::max);
    let (y_max, y_ticks) = nice_ticks(peak);
    chart(&Chart {
        title: &format!("{name} (mean {:.0} msg/s)", r.messages_per_s),
        x: time_axis(&rates),
        y: Axis {
            label: "messages/s",
            min: 0.0,
            max: y_max,
            ticks: y_ticks,
        },
        series: &[Series {
            name: "messages/s",
            colour: COLOURS[0],
            points,
        }],
        marks: &[],
    })
}

/// Server and generator CPU use, in percent of one core, interval by interval.
fn cpu_chart(r: &Report) -> String {
    let name = "CPU use over the window (100% = one core busy)";
    let rates = timeline::rates(&r.timeline);
    if rates.is_empty() {
        return empty_chart(name, "this scenario has no measured window");
    }
    let server = steps(&rates, |x| x.server_cores.map(|c| c * 100.0));
    let generator = steps(&rates, |x| x.generator_cores.map(|c| c * 100.0));
    let peak = server.iter().chain(&generator).map(|p| p.1).fold(100.0, f64::max);
    let (y_max, y_ticks) = nice_ticks(peak);
    let mut series = Vec::new();
    let server_name = if server.is_empty() {
        "server (not measured: give --server-pid)"
    } else {
        "server"
    };
    series.push(Series {
        name: server_name,
        colour: COLOURS[0],
        points: server,
    });
    series.push(Series {
        name: "generator",
        colour: COLOURS[1],
        points: generator,
    });
    chart(&Chart {
        title: name,
        x: time_axis(&rates),
        y: Axis {
            label: "% of a core",
            min: 0.0,
            max: y_max,
            ticks: y_ticks,
        },
        series: &series,
        marks: &[],
    })
}

/// A step line over the intervals: each interval's value held from its start to its end.
fn steps(rates: &[timeline::Rate], value: impl Fn(&timeline::Rate) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(rates.len() * 2);
    for x in rates {
        if let Some(v) = value(x) {
            out.push((x.from_s, v));
            out.push((x.to_s, v));
        }
    }
    out
}

fn time_axis(rates: &[timeline::Rate]) -> Axis<'static> {
    // The axis ends with the window, not at the next round number.
    let end = rates.last().map_or(1.0, |x| x.to_s).max(1e-3);
    let (_, mut ticks) = nice_ticks(end);
    ticks.retain(|t| t.0 <= end * 1.001);
    Axis {
        label: "seconds into the window",
        min: 0.0,
        max: end,
        ticks,
    }
}

/// Ticks from 0 covering `max`: steps of 1, 2 or 5 times a power of ten, about 5 of them.
fn nice_ticks(max: f64) -> (f64, Vec<(f64, String)>) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil().max(1.0) as u32;
    let top = step * f64::from(n);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    let ticks = (0..=n)
        .map(|i| {
            let v = step * f64::from(i);
            (v, group(v, decimals))
        })
        .collect();
    (top, ticks)
}

/// `1234567` -> `1,234,567`; with decimals as asked.
fn group(v: f64, decimals: usize) -> String {
    if decimals > 0 {
        return format!("{v:.decimals$}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Axis<'a> {
    label: &'a str,
    min: f64,
    max: f64,
    ticks: Vec<(f64, String)>,
}

struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
}

struct Chart<'a> {
    title: &'a str,
    x: Axis<'a>,
    y: Axis<'a>,
    series: &'a [Series<'a>],
    /// Labelled points on the first series: (x, y, label).
    marks: &'a [(f64, f64, String)],
}

fn open_svg(s: &mut String, title: &str) {
    let _ = write!(
        s,
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\"/>\
         <text class=\"title\" x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"600\">{t}</text>",
        MARGIN.0,
        t = esc(title)
    );
}

fn empty_chart(title: &str, why: &str) -> String {
    let mut s = String::new();
    open_svg(&mut s, title);
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#777\">{}</text></svg>",
        MARGIN.0,
        HEIGHT / 2.0,
        esc(why)
    );
    s
}

fn chart(c: &Chart<'_>) -> String {
    let (l, r, t, b) = MARGIN;
    let (pw, ph) = (WIDTH - l - r, HEIGHT - t - b);
    let span = |a: &Axis<'_>| (a.max - a.min).max(1e-12);
    let px = |x: f64| l + (x - c.x.min) / span(&c.x) * pw;
    let py = |y: f64| t + ph - (y.clamp(c.y.min, c.y.max) - c.y.min) / span(&c.y) * ph;
    let mut s = String::with_capacity(8 << 10);
    open_svg(&mut s, c.title);
    // Grid and ticks.
    for (v, label) in &c.y.ticks {
        let y = py(*v);
        let _ = write!(
            s,
            "<line x1=\"{l}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            l + pw,
            l - 6.0,
            y + 4.0,
            esc(label)
        );
    }
    for (i, (v, label)) in c.x.ticks.iter().enumerate() {
        let x = px(*v);
        let anchor = if i + 1 == c.x.ticks.len() { "end" } else { "middle" };
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{t}\" y2=\"{:.1}\" stroke=\"#e3e3e3\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            t + ph,
            t + ph + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        HEIGHT - 8.0,
        esc(c.x.label),
        t + ph / 2.0,
        esc(c.y.label)
    );
    // Series, and a legend when there are several.
    for (i, series) in c.series.iter().enumerate() {
        if !series.points.is_empty() {
            let _ = write!(
                s,
                "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"",
                series.colour
            );
            for (j, (x, y)) in series.points.iter().enumerate() {
                let sep = if j == 0 { "" } else { " " };
                let _ = write!(s, "{sep}{:.1},{:.1}", px(*x), py(*y));
            }
            s.push_str("\"/>");
        }
        if c.series.len() > 1 {
            let (lx, ly) = (l + 12.0, t + 16.0 + 16.0 * i as f64);
            let _ = write!(
                s,
                "<line x1=\"{lx}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2\"/>\
                 <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
                lx + 18.0,
                ly - 4.0,
                ly - 4.0,
                series.colour,
                lx + 24.0,
                esc(series.name)
            );
        }
    }
    for (x, y, label) in c.marks {
        let (cx, cy) = (px(*x), py(*y));
        let _ = write!(
            s,
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            COLOURS[0],
            cx - 6.0,
            cy - 6.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Escapes text for XML and HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::timeline::Interval;
    use crate::loadgen::{Percentiles, histogram_buckets, latency_histogram};

    fn report() -> Report {
        let mut h = latency_histogram();
        for i in 1..=10_000u64 {
            h.record(20_000 + i * 10).unwrap();
        }
        Report {
            scenario: "echo",
            connections: 100,
            connected: 100,
            payload: 20,
            messages: 10_000,
            latency: Percentiles::of(&h),
            latency_hist: histogram_buckets(&h),
            timeline: (1..=5)
                .map(|i| Interval {
                    end_s: f64::from(i) * 0.2,
                    messages: 2000,
                    server_cpu_us: Some(150_000),
                    generator_cpu_us: Some(190_000),
                })
                .collect(),
            ..Report::default()
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        let (top, ticks) = nice_ticks(173.0);
        assert_eq!(top, 200.0);
        assert_eq!(
            ticks.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(),
            ["0", "50", "100", "150", "200"]
        );
        let (top, ticks) = nice_ticks(0.73);
        assert!((top - 0.8).abs() < 1e-9);
        assert_eq!(ticks[1].1, "0.2");
        assert_eq!(nice_ticks(1_234_567.0).1[1].1, "500,000");
    }

    #[test]
    fn page_is_self_contained_with_a_curve_per_chart() {
        let opts = Options {
            url: "ws://127.0.0.1:9001/".to_owned(),
            connections: 100,
            server_pid: Some(42),
            ..Options::default()
        };
        let params = parameters(&opts, 1);
        let page = html(&report(), &params);
        assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
        assert!(!page.contains("<script"));
        assert_eq!(
            page.matches("<polyline").count(),
            4,
            "latency, msg/s, server and generator"
        );
        assert!(page.contains("<td>connections</td><td>100</td>"));
        assert!(page.contains("measured from /proc (pid 42"));
        assert!(page.contains("p99 "));
        let picture = svg(&report(), &params);
        assert!(picture.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(picture.matches("<polyline").count(), 4);
        assert!(picture.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_run_without_latency_or_window_says_so() {
        let r = Report {
            scenario: "connect",
            ..Report::default()
        };
        let page = html(&r, &[]);
        assert!(page.contains("no latency was recorded"));
        assert!(page.contains("no measured window"));
        assert!(!page.contains("<polyline"));
    }
}
