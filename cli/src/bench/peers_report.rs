//! The HTML report of `strata bench --peers`: one page, inline SVG drawn by hand (no
//! plotting dependency): per workload, each engine's latency-percentile curve on a log
//! scale; then throughput bars of every workload per engine, normalised to the fastest
//! engine of that workload, labelled with ops/s.

use std::fmt::Write as _;

use super::peers::{CURVE, PeerReport};

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The complete HTML page.
pub fn html(r: &PeerReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>strata bench --peers</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}\
         table{{border-collapse:collapse;margin:6px 0}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:10px}}</style>\
         </head><body>\n<h1>Strata vs {}</h1>\n<p>{} — {} (load average at start {})<br><code>{}</code></p>\n",
        esc(&r.engines[1..].join(", ")),
        esc(&r.date_utc),
        esc(&r.machine),
        esc(&r.load_average),
        esc(&r.command)
    );
    let s = &r.settings;
    let _ = write!(
        h,
        "<p>keys {} B, values {} B (exchange: {}), {} keys, {} ops, {} scans × {}, {} sync ops, \
         {} threads, {} sync writers, memtable {} MiB, block cache {} MiB, bloom {} bits/key, \
         {} B blocks, compression {}, WAL {}.</p>",
        s.key_bytes,
        s.value_bytes,
        esc(&s.exchange_value_bytes),
        s.keys,
        s.ops,
        s.scans,
        s.scan_len,
        s.sync_ops,
        s.threads,
        s.sync_writers,
        s.memtable_mib,
        s.cache_mib,
        s.bloom_bits_per_key,
        s.block_size,
        s.compression,
        esc(s.wal)
    );
    h.push_str("\n<h2>Throughput</h2>\n");
    h.push_str(&throughput_svg(r));
    h.push_str("<h2>Latency percentiles</h2>\n<div class=\"charts\">\n");
    for w in &r.workloads {
        h.push_str(&latency_svg(w));
    }
    h.push_str("</div>\n<h2>Tables</h2>\n");
    for w in &r.workloads {
        let _ = write!(
            h,
            "<h3>{} ({} threads, {} ops)</h3>\n<table><tr><th>engine</th><th>ops/s</th>\
             <th>p50 µs</th><th>p99 µs</th><th>p99.9 µs</th><th>max µs</th><th>disk MiB</th>\
             <th>of which WAL MiB</th><th>strata/engine throughput</th><th>strata/engine p99</th></tr>\n",
            esc(&w.workload),
            w.threads,
            w.ops_requested
        );
        for e in &w.results {
            let ratio = w.ratios.iter().find(|q| q.peer == e.engine);
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
                 <td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.engine),
                e.latency.ops_per_sec,
                e.latency.p50_us,
                e.latency.p99_us,
                e.latency.p999_us,
                e.latency.max_us,
                e.disk_bytes as f64 / (1024.0 * 1024.0),
                e.wal_bytes as f64 / (1024.0 * 1024.0),
                ratio.map_or("—".into(), |q| format!("{:.2}×", q.throughput)),
                ratio.map_or("—".into(), |q| format!("{:.2}×", q.p99)),
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn legend(svg: &mut String, engines: &[String], x: f64, y: f64) {
    for (i, e) in engines.iter().enumerate() {
        let yy = y + i as f64 * 14.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            yy - 9.0,
            COLORS[i % COLORS.len()],
            x + 14.0,
            yy,
            esc(e)
        );
    }
}

/// One workload's percentile curves: x = the [`CURVE`] percentiles (evenly spaced),
/// y = latency in µs on a log scale.
fn latency_svg(w: &super::peers::WorkloadResult) -> String {
    let (width, height) = (360.0, 240.0);
    let (left, right, top, bottom) = (48.0, 70.0, 24.0, 40.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let values = w.results.iter().flat_map(|e| e.curve.iter().map(|&(_, us)| us.max(0.01)));
    let lo = values.clone().fold(f64::INFINITY, f64::min).log10().floor();
    let hi = values.fold(0.01f64, f64::max).log10().ceil().max(lo + 1.0);
    let y_of = |us: f64| top + plot_h * (1.0 - (us.max(0.01).log10() - lo) / (hi - lo));
    let x_of = |i: usize| left + plot_w * i as f64 / (CURVE.len() - 1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\"><text x=\"{left}\" y=\"14\" font-size=\"13\" \
         font-weight=\"bold\">{}</text>",
        esc(&w.workload)
    );
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{} µs</text>",
            left + plot_w,
            left - 4.0,
            y + 3.0,
            fmt_us(10f64.powf(decade))
        );
        decade += 1.0;
    }
    for (i, p) in CURVE.iter().enumerate() {
        let label = if *p >= 100.0 { "max".to_string() } else { format!("{p}") };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{label}</text>",
            x_of(i),
            top + plot_h + 14.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">percentile</text>",
        left + plot_w / 2.0,
        height - 6.0
    );
    for (i, e) in w.results.iter().enumerate() {
        let points: Vec<String> = e
            .curve
            .iter()
            .enumerate()
            .map(|(j, &(_, us))| format!("{:.1},{:.1}", x_of(j), y_of(us)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            COLORS[i % COLORS.len()],
            points.join(" ")
        );
    }
    let engines: Vec<String> = w.results.iter().map(|e| e.engine.clone()).collect();
    legend(&mut svg, &engines, left + plot_w + 8.0, top + 10.0);
    svg.push_str("</svg>\n");
    svg
}

fn fmt_us(us: f64) -> String {
    if us >= 1.0 { format!("{us:.0}") } else { format!("{us}") }
}

/// Horizontal bars: for each workload one bar per engine, length = ops/s relative to the
/// fastest engine of the workload, labelled with ops/s.
fn throughput_svg(r: &PeerReport) -> String {
    let engines = r.engines.len().max(1);
    let bar = 12.0;
    let group = bar * engines as f64 + 10.0;
    let (left, top, plot_w) = (130.0, 10.0, 600.0);
    let width = left + plot_w + 200.0;
    let height = top + group * r.workloads.len() as f64 + 10.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\">"
    );
    for (wi, w) in r.workloads.iter().enumerate() {
        let y0 = top + group * wi as f64;
        let best = w.results.iter().map(|e| e.latency.ops_per_sec).fold(0.0f64, f64::max);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + bar * engines as f64 / 2.0 + 4.0,
            esc(&w.workload)
        );
        for (i, e) in w.results.iter().enumerate() {
            let len = if best > 0.0 { plot_w * e.latency.ops_per_sec / best } else { 0.0 };
            let y = y0 + bar * i as f64;
            let _ = write!(
                svg,
                "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{} {:.0} ops/s</text>",
                bar - 2.0,
                COLORS[i % COLORS.len()],
                left + len + 4.0,
                y + bar - 3.0,
                esc(&e.engine),
                e.latency.ops_per_sec
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}
