//! One self-contained HTML page of many implementations: a grid of cases (rows, under their
//! group's title) against implementations (columns).
//!
//! Each cell is a small box coloured by its verdict, with the verdict's text; clicking it opens a
//! panel with the case, the implementation, the verdict, the reason and the transcript. The page
//! needs nothing but itself: the style and the script are inline, there is no font to fetch. The
//! cells' reasons and transcripts are one JSON document in a `<script type="application/json">`,
//! read when a cell is clicked, rather than thousands of hidden blocks.
//!
//! ```
//! use c10k_tools::check::Verdict;
//! use c10k_tools::check::html::{Cell, Grid, Row, render};
//!
//! let cell = |verdict| Cell { verdict, reason: String::new(), transcript: Vec::new() };
//! let grid = Grid {
//!     title: "Echo servers".to_owned(),
//!     subtitle: "RFC 6455".to_owned(),
//!     columns: vec!["a".to_owned(), "b".to_owned()],
//!     rows: vec![Row {
//!         id: "framing.1.1".to_owned(),
//!         group: "Framing".to_owned(),
//!         description: "an empty text message".to_owned(),
//!         cells: vec![cell(Verdict::Pass), cell(Verdict::Fail)],
//!     }],
//! };
//! let page = render(&grid);
//! assert_eq!(page.matches("class=\"cell ").count(), 2);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::report::string as json_string;
use super::{Report, Verdict};

/// The verdicts the legend explains, in its order, with what each means.
const LEGEND: [(&str, &str); 5] = [
    ("PASS", "what the RFC asks for"),
    ("NON-STRICT", "allowed, not the best answer"),
    ("FAIL", "wrong"),
    ("SKIPPED", "not run (an extension the case needs was declined)"),
    ("INFO", "recorded, not judged"),
];

/// Cases against implementations.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The page's title.
    pub title: String,
    /// A line under the title (what was run, when, with which options).
    pub subtitle: String,
    /// The implementations' names, one per column.
    pub columns: Vec<String>,
    /// The cases, in order; rows of one group follow each other.
    pub rows: Vec<Row>,
}

/// One case.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The case id (`utf8.2.14`).
    pub id: String,
    /// The title of the case's group; a heading starts wherever it changes.
    pub group: String,
    /// What the case checks.
    pub description: String,
    /// One cell per column, in the columns' order (missing cells are shown empty).
    pub cells: Vec<Cell>,
}

/// One case against one implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The verdict.
    pub verdict: Verdict,
    /// Why (or what the implementation did).
    pub reason: String,
    /// The frames written and received, one line each.
    pub transcript: Vec<String>,
}

/// The grid of `reports`, one column each, named by `columns`: a row per case, in the order
/// the first report that has the case ran it. A case a report lacks is SKIPPED in its column.
pub fn grid_of(title: &str, subtitle: &str, columns: &[String], reports: &[Report]) -> Grid {
    let mut order: Vec<(&str, &str, &str)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for report in reports {
        for r in &report.results {
            if seen.insert(r.id.as_str()) {
                order.push((r.id.as_str(), r.group.title(), r.description.as_str()));
            }
        }
    }
    let by_id: Vec<BTreeMap<&str, &super::CaseResult>> = reports
        .iter()
        .map(|rep| rep.results.iter().map(|r| (r.id.as_str(), r)).collect())
        .collect();
    let rows = order
        .into_iter()
        .map(|(id, group, description)| Row {
            id: id.to_owned(),
            group: group.to_owned(),
            description: description.to_owned(),
            cells: by_id
                .iter()
                .map(|m| match m.get(id) {
                    Some(r) => Cell::of(
                        r.verdict,
                        &r.reason,
                        &r.sent,
                        "server",
                        &r.observed,
                        &r.transcript,
                    ),
                    None => Cell::not_run("implementation"),
                })
                .collect(),
        })
        .collect();
    Grid {
        title: title.to_owned(),
        subtitle: subtitle.to_owned(),
        columns: columns.to_vec(),
        rows,
    }
}

impl Cell {
    /// A case's cell: its verdict, its reason followed by what was sent and what `who` (the
    /// server or the client) did, and its transcript.
    fn of(
        verdict: Verdict,
        reason: &str,
        sent: &str,
        who: &str,
        observed: &str,
        transcript: &[String],
    ) -> Self {
        Self {
            verdict,
            reason: if reason.is_empty() {
                format!("sent {sent}; {who} {observed}")
            } else {
                format!("{reason}\n(sent {sent}; {who} {observed})")
            },
            transcript: transcript.to_vec(),
        }
    }

    /// The cell of a case that one column did not run.
    fn not_run(what: &str) -> Self {
        Self {
            verdict: Verdict::Skipped,
            reason: format!("not run against this {what}"),
            transcript: Vec::new(),
        }
    }
}

/// The grid of the client suite's reports (`c10k check --serve --report`): a column per
/// client, in the reports' order, a row per case in running order.
pub fn client_grid(title: &str, subtitle: &str, reports: &[super::client::ClientReport]) -> Grid {
    let columns = reports.iter().map(|r| r.agent.clone()).collect();
    let rows = reports
        .first()
        .map(|first| {
            first
                .results
                .iter()
                .enumerate()
                .map(|(i, case)| Row {
                    id: case.id.clone(),
                    group: case.group.title().to_owned(),
                    description: case.description.clone(),
                    cells: reports
                        .iter()
                        .map(|rep| match rep.results.get(i).filter(|r| r.id == case.id) {
                            Some(r) => Cell::of(
                                r.verdict,
                                &r.reason,
                                &r.sent,
                                "client",
                                &r.observed,
                                &r.transcript,
                            ),
                            None => Cell::not_run("client"),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    Grid {
        title: title.to_owned(),
        subtitle: subtitle.to_owned(),
        columns,
        rows,
    }
}

/// The page: one HTML document, with its style, script and data inline.
pub fn render(grid: &Grid) -> String {
    let cols = grid.columns.len();
    let mut out = String::with_capacity(4096 + grid.rows.len() * (200 + cols * 80));
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(&grid.title));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&grid.title));
    if !grid.subtitle.is_empty() {
        let _ = writeln!(out, "<p class=\"subtitle\">{}</p>", escape(&grid.subtitle));
    }
    out.push_str("<div class=\"legend\" id=\"legend\">");
    for (verdict, meaning) in LEGEND {
        let _ = write!(
            out,
            "<span><span class=\"box {}\">{}</span> {}</span>",
            class_of(verdict),
            escape(verdict),
            escape(meaning)
        );
    }
    out.push_str(
        "<label><input type=\"checkbox\" id=\"only-diff\"> only the cases where the \
         implementations differ</label></div>\n",
    );
    out.push_str("<table id=\"grid\">\n<thead><tr><th class=\"case\">case</th>");
    for name in &grid.columns {
        let _ = write!(out, "<th class=\"impl\">{}</th>", escape(name));
    }
    out.push_str("</tr>\n<tr class=\"summary\" id=\"summary\"><th class=\"case\">");
    let _ = write!(out, "{} cases</th>", grid.rows.len());
    for c in 0..cols {
        out.push_str("<td>");
        for (verdict, n) in counts(grid, c) {
            let _ = write!(
                out,
                "<span class=\"count {}\" data-verdict=\"{}\">{} {}</span>",
                class_of(verdict),
                escape(verdict),
                n,
                escape(verdict)
            );
        }
        out.push_str("</td>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let mut group: Option<&str> = None;
    for (r, row) in grid.rows.iter().enumerate() {
        if group != Some(row.group.as_str()) {
            group = Some(&row.group);
            let _ = writeln!(
                out,
                "<tr class=\"group\"><th colspan=\"{}\">{}</th></tr>",
                cols + 1,
                escape(&row.group)
            );
        }
        let same = row.cells.len() == cols && row.cells.windows(2).all(|w| w[0].verdict == w[1].verdict);
        let _ = write!(
            out,
            "<tr data-r=\"{r}\"{}><th class=\"case\"><span class=\"id\">{}</span> <span class=\"desc\">{}</span></th>",
            if same { " data-same=\"1\"" } else { "" },
            escape(&row.id),
            escape(&row.description)
        );
        for c in 0..cols {
            match row.cells.get(c) {
                Some(cell) => {
                    let v = cell.verdict.as_str();
                    let _ = write!(
                        out,
                        "<td><button class=\"cell {}\" data-verdict=\"{}\" data-c=\"{c}\">{}</button></td>",
                        class_of(v),
                        escape(v),
                        escape(v)
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out.push_str(
        "<dialog id=\"panel\"><form method=\"dialog\"><button class=\"close\" aria-label=\"close\">\
         close</button></form><dl><dt>case</dt><dd id=\"p-case\"></dd><dt>description</dt>\
         <dd id=\"p-desc\"></dd><dt>implementation</dt><dd id=\"p-impl\"></dd><dt>verdict</dt>\
         <dd><span id=\"p-verdict\"></span></dd><dt>reason</dt><dd id=\"p-reason\"></dd></dl>\
         <h2>transcript</h2><pre id=\"p-transcript\"></pre></dialog>\n",
    );
    out.push_str("<script type=\"application/json\" id=\"data\">");
    out.push_str(&script_safe(&data(grid)));
    out.push_str("</script>\n");
    let _ = writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>");
    out
}

/// The counts of column `c`'s verdicts: the legend's verdicts first, in its order, then any
/// other, by name; verdicts no cell has are left out.
fn counts(grid: &Grid, c: usize) -> Vec<(&'static str, usize)> {
    let mut map: BTreeMap<&'static str, usize> = BTreeMap::new();
    for row in &grid.rows {
        if let Some(cell) = row.cells.get(c) {
            *map.entry(cell.verdict.as_str()).or_default() += 1;
        }
    }
    let mut out: Vec<(&'static str, usize)> = Vec::new();
    for (verdict, _) in LEGEND {
        if let Some((k, n)) = map.remove_entry(verdict) {
            out.push((k, n));
        }
    }
    out.extend(map);
    out
}

/// The JSON the panel reads: the columns, each row's id and description, and each cell's
/// verdict, reason and transcript (`cells[row][column]`).
fn data(grid: &Grid) -> String {
    let mut out = String::from("{\"columns\":[");
    for (i, name) in grid.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, name);
    }
    out.push_str("],\"rows\":[");
    for (r, row) in grid.rows.iter().enumerate() {
        if r > 0 {
            out.push(',');
        }
        out.push_str("\n{\"id\":");
        json_string(&mut out, &row.id);
        out.push_str(",\"description\":");
        json_string(&mut out, &row.description);
        out.push_str(",\"cells\":[");
        for (c, cell) in row.cells.iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            out.push_str("{\"verdict\":");
            json_string(&mut out, cell.verdict.as_str());
            out.push_str(",\"reason\":");
            json_string(&mut out, &cell.reason);
            out.push_str(",\"transcript\":");
            json_string(&mut out, &cell.transcript.join("\n"));
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// JSON that cannot end the `<script>` element it sits in: `<`, `>` and `&` only occur inside
/// its strings, where `\u003c` and the like mean the same.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for ch in json.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The CSS class of a verdict: `v-` and its text in lower case, other characters as `-`
/// (`NON-STRICT` is `v-non-strict`).
fn class_of(verdict: &str) -> String {
    let mut s = String::from("v-");
    s.extend(verdict.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        }
    }));
    s
}

/// `s` as HTML text or attribute value.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{--pass:#2e9e4f;--non-strict:#e0a100;--fail:#d33a2c;--skipped:#9a9a9a;--info:#6f8faf;--other:#7a5fa0}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}.subtitle{color:#555;margin:0 0 1em}
.legend{display:flex;flex-wrap:wrap;gap:.4em 1.2em;margin:0 0 1em;align-items:center}
.box,.cell,.count{display:inline-block;border-radius:3px;color:#fff;font-size:11px;font-weight:600;padding:1px 5px;border:0}
.cell{cursor:pointer;min-width:5.5em;font-family:inherit}.cell:focus{outline:2px solid #222}
.count{margin:1px 2px}
.v-pass{background:var(--pass)}.v-non-strict{background:var(--non-strict);color:#222}
.v-fail{background:var(--fail)}.v-skipped{background:var(--skipped)}.v-info{background:var(--info)}
[class*=" v-"]:not(.v-pass):not(.v-non-strict):not(.v-fail):not(.v-skipped):not(.v-info){background:var(--other)}
table{border-collapse:collapse}th,td{padding:2px 6px;text-align:left;vertical-align:middle}
thead{position:sticky;top:0;background:#fff;z-index:1;box-shadow:0 1px 0 #ddd}thead tr.summary{background:#fafafa}
tr.group th{background:#eef1f4;font-size:1.05em;padding:.5em 6px}
th.case{font-weight:normal;max-width:34em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}.desc{color:#555}
tbody tr:hover{background:#f6f6f6}
.only-diff tr[data-same]{display:none}
dialog{max-width:min(60em,92vw);border:1px solid #999;border-radius:6px;padding:1em 1.2em}
dialog::backdrop{background:rgba(0,0,0,.3)}dialog .close{float:right}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2em 1em;margin:0}dt{color:#555}dd{margin:0;white-space:pre-wrap}
h2{font-size:1em;margin:1em 0 .3em}
pre{background:#f4f4f4;padding:.6em;max-height:50vh;overflow:auto;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre}
"#;

const SCRIPT: &str = r#"
(function(){
var data=JSON.parse(document.getElementById('data').textContent);
var panel=document.getElementById('panel');
function set(id,text){document.getElementById(id).textContent=text;}
document.getElementById('grid').addEventListener('click',function(e){
  var cell=e.target.closest('.cell');if(!cell)return;
  var r=+cell.closest('tr').dataset.r,c=+cell.dataset.c;
  var row=data.rows[r],d=row.cells[c];
  set('p-case',row.id);set('p-desc',row.description);set('p-impl',data.columns[c]);
  set('p-verdict',d.verdict);set('p-reason',d.reason||'-');
  set('p-transcript',d.transcript||'(no transcript)');
  var v=document.getElementById('p-verdict');v.className='box '+cell.className.split(' ').filter(function(k){return k.indexOf('v-')===0;}).join(' ');
  if(panel.showModal){if(!panel.open)panel.showModal();}else{panel.setAttribute('open','');}
});
document.getElementById('only-diff').addEventListener('change',function(e){
  document.body.classList.toggle('only-diff',e.target.checked);
});
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(verdict: Verdict, transcript: &[&str]) -> Cell {
        Cell {
            verdict,
            reason: format!("because {verdict}"),
            transcript: transcript.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn grid(rows: usize, columns: usize) -> Grid {
        let verdicts = [Verdict::Pass, Verdict::Fail, Verdict::NonStrict, Verdict::Skipped];
        Grid {
            title: "servers".to_owned(),
            subtitle: String::new(),
            columns: (0..columns).map(|c| format!("impl{c}")).collect(),
            rows: (0..rows)
                .map(|r| Row {
                    id: format!("case.{r}"),
                    group: if r < 2 { "Framing" } else { "Closing" }.to_owned(),
                    description: format!("case number {r}"),
                    cells: (0..columns)
                        .map(|c| cell(verdicts[(r + c) % verdicts.len()], &["+0.000 ms  > text"]))
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn three_rows_by_two_columns_render_six_cells() {
        let page = render(&grid(3, 2));
        assert_eq!(page.matches("class=\"cell ").count(), 6);
        assert_eq!(page.matches("<button class=\"cell").count(), 6);
        // One heading per group, in the rows' order.
        assert_eq!(page.matches("<tr class=\"group\">").count(), 2);
        let framing = page.find(">Framing</th>").expect("a Framing heading");
        let closing = page.find(">Closing</th>").expect("a Closing heading");
        assert!(framing < closing);
        assert!(page.contains("id=\"legend\"") && page.contains("id=\"summary\""));
    }

    #[test]
    fn the_summary_counts_each_columns_verdicts() {
        let g = grid(5, 2);
        // Column 0: rows 0..5 give PASS FAIL NON-STRICT SKIPPED PASS.
        assert_eq!(
            counts(&g, 0),
            [("PASS", 2), ("NON-STRICT", 1), ("FAIL", 1), ("SKIPPED", 1)]
        );
        let page = render(&g);
        assert!(page.contains("data-verdict=\"PASS\">2 PASS</span>"), "{page}");
        // Three FAIL cells (row 1 of column 0, rows 0 and 4 of column 1), a count in each column.
        assert_eq!(page.matches("data-verdict=\"FAIL\"").count(), 3 + 2);
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let mut g = grid(1, 1);
        g.title = "<b>&\"'".to_owned();
        g.columns[0] = "<script>alert(1)</script>".to_owned();
        g.rows[0].description = "a <tag> & more".to_owned();
        g.rows[0].cells[0].transcript = vec!["</script><script>alert(2)</script>".to_owned()];
        g.rows[0].cells[0].reason = "<!-- \u{2028}".to_owned();
        let page = render(&g);
        assert!(page.contains("<title>&lt;b&gt;&amp;&quot;&#39;</title>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("a &lt;tag&gt; &amp; more"));
        assert!(!page.contains("alert(1)</script>"));
        assert!(
            !page.contains("<script>alert(2)"),
            "the transcript cannot close the data element"
        );
        assert!(page.contains("\\u003c/script\\u003e\\u003cscript\\u003ealert"));
        assert!(!page.contains("<!--"));
        // Exactly the page's own two script elements.
        assert_eq!(page.matches("<script").count(), 2);
        assert_eq!(page.matches("</script>").count(), 2);
    }

    #[test]
    fn verdict_classes_come_from_their_text() {
        assert_eq!(class_of("NON-STRICT"), "v-non-strict");
        assert_eq!(class_of("INFO"), "v-info");
        assert_eq!(class_of(Verdict::Pass.as_str()), "v-pass");
        assert!(STYLE.contains(".v-info{"));
    }

    #[test]
    fn rows_where_all_implementations_agree_are_marked() {
        let mut g = grid(2, 2);
        g.rows[0].cells[1].verdict = g.rows[0].cells[0].verdict;
        let page = render(&g);
        assert!(page.contains("<tr data-r=\"0\" data-same=\"1\">"));
        assert!(page.contains("<tr data-r=\"1\"><th"));
    }
}
