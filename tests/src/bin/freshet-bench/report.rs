//! Min / median / max per contender, workload and guarantee; the ratio table; the chart's data.

use std::fmt::Write as _;

use crate::harness::{Contender, Row, Workload};

#[derive(Clone, Copy, Default)]
pub struct Stat {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub n: usize,
}

fn stat(mut v: Vec<f64>) -> Option<Stat> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some(Stat {
        min: v[0],
        median,
        max: v[v.len() - 1],
        n: v.len(),
    })
}

/// The figures of one contender on one workload under one guarantee.
#[derive(Default)]
pub struct Figures {
    pub records_per_s: Option<Stat>,
    pub p50: Option<Stat>,
    pub p99: Option<Stat>,
    pub rss: Option<Stat>,
    pub cpu: Option<Stat>,
    pub startup: Option<Stat>,
}

pub const METRICS: [(&str, &str); 6] = [
    ("records/s", "higher is better"),
    ("p50 ms", "lower is better"),
    ("p99 ms", "lower is better"),
    ("peak RSS MiB", "lower is better"),
    ("CPU s", "lower is better"),
    ("start s", "lower is better"),
];

impl Figures {
    pub fn get(&self, i: usize) -> Option<Stat> {
        [
            self.records_per_s,
            self.p50,
            self.p99,
            self.rss,
            self.cpu,
            self.startup,
        ][i]
    }
}

pub fn figures(rows: &[Row], c: Contender, w: Workload, g: &str) -> Figures {
    // The raw pipe runs the stateless workload only; it is every workload's ceiling.
    let w = if c == Contender::Pipe {
        Workload::Stateless
    } else {
        w
    };
    let pick = |phase: &'static str, f: fn(&Row) -> f64| {
        stat(
            rows.iter()
                .filter(|r| {
                    r.contender == c
                        && r.workload == w
                        && r.guarantee == g
                        && r.phase == phase
                        && r.complete
                })
                .map(f)
                .collect(),
        )
    };
    let tp = |f: fn(&Row) -> f64| pick("throughput", f);
    let lat = |f: fn(&Row) -> f64| pick("latency", f);
    Figures {
        records_per_s: tp(|r| r.records_per_s),
        p50: lat(|r| r.p50_ms),
        p99: lat(|r| r.p99_ms),
        rss: tp(|r| r.rss_mib),
        cpu: tp(|r| r.cpu_s),
        startup: tp(|r| r.startup_s),
    }
}

fn fmt(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: Option<Stat>, b: Option<Stat>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "-".into(),
    }
}

/// The figures table (median, with min-max) and the ratio tables.
pub fn tables(
    rows: &[Row],
    workloads: &[Workload],
    guarantees: &[String],
    contenders: &[Contender],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nFigures: median [min-max] over the repeats (records/s: input fully processed, from process start; p50/p99: end-to-end latency at a fixed rate; start s: process start to RUNNING)\n"
    );
    let _ = write!(out, "| workload | guarantee | contender |");
    for (m, _) in METRICS {
        let _ = write!(out, " {m} |");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|{}", " --- |".repeat(3 + METRICS.len()));
    for g in guarantees {
        for w in workloads {
            for c in contenders {
                if *c == Contender::Pipe && *w != Workload::Stateless {
                    continue;
                }
                // The avro workload is Freshet's alone (against its own JSON run).
                if *w == Workload::Avro && *c != Contender::Freshet {
                    continue;
                }
                let f = figures(rows, *c, *w, g);
                let name = if *c == Contender::Pipe {
                    "raw pipe (copies all)"
                } else {
                    c.name()
                };
                let _ = write!(out, "| {} | {} | {} |", w.name(), g, name);
                for i in 0..METRICS.len() {
                    match f.get(i) {
                        Some(s) if s.n > 1 => {
                            let _ =
                                write!(out, " {} [{}-{}] |", fmt(s.median), fmt(s.min), fmt(s.max));
                        }
                        Some(s) => {
                            let _ = write!(out, " {} |", fmt(s.median));
                        }
                        None => {
                            let _ = write!(out, " - |");
                        }
                    }
                }
                let _ = writeln!(out);
            }
        }
    }
    if workloads.contains(&Workload::Avro) && workloads.contains(&Workload::Stateless) {
        let _ = writeln!(
            out,
            "\nAvro vs JSON (Freshet, the stateless steps on the same records, read and written in each format; CPU s of the whole run, start-up included)\n"
        );
        let _ = writeln!(
            out,
            "| guarantee | CPU s avro | CPU s json | ratio avro / json |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for g in guarantees {
            let avro = figures(rows, Contender::Freshet, Workload::Avro, g).cpu;
            let json = figures(rows, Contender::Freshet, Workload::Stateless, g).cpu;
            let cell = |s: Option<Stat>| s.map(|s| fmt(s.median)).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "| {g} | {} | {} | {} |",
                cell(avro),
                cell(json),
                ratio(avro, json)
            );
        }
    }
    for (other, label) in [
        (Contender::KStreams, "Kafka Streams"),
        (Contender::Pipe, "raw pipe"),
    ] {
        if !contenders.contains(&other) || !contenders.contains(&Contender::Freshet) {
            continue;
        }
        let _ = writeln!(
            out,
            "\nRatios Freshet / {label} (medians; records/s: above 1 is Freshet faster; the others: below 1 is Freshet better)\n"
        );
        let _ = write!(out, "| workload | guarantee |");
        for (m, _) in METRICS {
            let _ = write!(out, " {m} |");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|{}", " --- |".repeat(2 + METRICS.len()));
        for g in guarantees {
            for w in workloads {
                if *w == Workload::Avro && other == Contender::KStreams {
                    continue;
                }
                let f = figures(rows, Contender::Freshet, *w, g);
                let o = figures(rows, other, *w, g);
                let _ = write!(out, "| {} | {} |", w.name(), g);
                for (i, (metric, _)) in METRICS.iter().enumerate() {
                    // The raw pipe reports RUNNING without joining a group: no comparison.
                    let r = if other == Contender::Pipe && *metric == "start s" {
                        "-".to_owned()
                    } else {
                        ratio(f.get(i), o.get(i))
                    };
                    let _ = write!(out, " {r} |");
                }
                let _ = writeln!(out);
            }
        }
    }
    out
}

/// The chart's data: one line per workload and guarantee; per metric (records/s, p99, peak
/// RSS, CPU s) and contender, median, min and max (0 where absent).
pub fn chart_data(rows: &[Row], workloads: &[Workload], guarantees: &[String]) -> String {
    let mut out = String::from("# label");
    let metrics = [0usize, 2, 3, 4];
    for m in metrics {
        for c in ["freshet", "kstreams", "pipe"] {
            let _ = write!(
                out,
                " {}:{c}:median min max",
                METRICS[m].0.replace(' ', "_")
            );
        }
    }
    out.push('\n');
    for g in guarantees {
        for w in workloads {
            let short = if g == "exactly_once_v2" {
                "eos"
            } else {
                "alos"
            };
            let _ = write!(out, "{}/{short}", w.name());
            for m in metrics {
                for c in [Contender::Freshet, Contender::KStreams, Contender::Pipe] {
                    let s = figures(rows, c, *w, g).get(m).unwrap_or_default();
                    let _ = write!(out, " {:.2} {:.2} {:.2}", s.median, s.min, s.max);
                }
            }
            out.push('\n');
        }
    }
    out
}
