//! The Prometheus text exposition format (version 0.0.4), written from values passed in. Pure:
//! the caller gathers the numbers. Each metric family gets its `# HELP` and `# TYPE` once,
//! before its samples; label values and help text are escaped as the format requires
//! (`\\`, `\"` and `\n` in label values; `\\` and `\n` in help).

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric family being written: `family(..)` then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its help line and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the family started last.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", crate::escape::prometheus_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::new();
        e.family("x_bytes_total", Kind::Counter, "Bytes.\nMore \\ text")
            .sample("x_bytes_total", &[("stream", "a\"b\\c\nd")], 12.0)
            .family("y_seconds", Kind::Gauge, "Age.")
            .sample("y_seconds", &[], 1.5);
        assert_eq!(
            e.finish(),
            "# HELP x_bytes_total Bytes.\\nMore \\\\ text\n# TYPE x_bytes_total counter\n\
             x_bytes_total{stream=\"a\\\"b\\\\c\\nd\"} 12\n\
             # HELP y_seconds Age.\n# TYPE y_seconds gauge\ny_seconds 1.5\n"
        );
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
