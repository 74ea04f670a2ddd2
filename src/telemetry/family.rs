//! Label families that write themselves to the text exposition: the per-market series.
//!
//! At the scale of the whole of Upbit (800 codes x three types, about 40k series) the
//! `prometheus` crate's `gather()` was nearly all of a scrape: a protobuf family per metric, every
//! series' label pairs cloned and sorted, then its text encoder on top. These families hold each
//! series once, as its rendered label text (`code="KRW-BTC",side="ask"`, the key that keeps
//! them sorted) and an atomic value; a handle is that value, kept by the metrics actor and
//! written on the hot path with one relaxed atomic store, as before. A scrape locks one family at
//! a time and writes its lines; the actor takes the same lock only to add or remove a series.
//!
//! The text is what the crate's encoder wrote: `# HELP`, `# TYPE`, one line per series in
//! label order, values as Rust prints an `f64`, and a family without series left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// One series' value: a cheap handle (an `Arc` of an atomic) that the family and its writer
/// share.
pub trait Value: Clone + Default {
    /// The exposition's `# TYPE`.
    const KIND: &'static str;

    /// The value as the exposition prints it (Rust's `Display`, as the crate's encoder did).
    fn shown(&self) -> impl std::fmt::Display;

    /// Appends the value as the exposition writes it.
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{}", self.shown());
    }
}

/// A float gauge.
#[derive(Clone, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Value for Gauge {
    const KIND: &'static str = "gauge";

    fn shown(&self) -> impl std::fmt::Display {
        self.get()
    }
}

/// An integer gauge.
#[derive(Clone, Default)]
pub struct IntGauge(Arc<AtomicI64>);

impl IntGauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Value for IntGauge {
    const KIND: &'static str = "gauge";

    fn shown(&self) -> impl std::fmt::Display {
        self.get()
    }
}

/// A float counter: only ever grows.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `by`; a negative or NaN `by` is ignored (a counter never goes down).
    pub fn inc_by(&self, by: f64) {
        if by.is_nan() || by <= 0.0 {
            return;
        }
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + by).to_bits())
            });
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Value for Counter {
    const KIND: &'static str = "counter";

    fn shown(&self) -> impl std::fmt::Display {
        self.get()
    }
}

/// An integer counter.
#[derive(Clone, Default)]
pub struct IntCounter(Arc<AtomicU64>);

impl IntCounter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Value for IntCounter {
    const KIND: &'static str = "counter";

    fn shown(&self) -> impl std::fmt::Display {
        self.get()
    }
}

/// A metric with labels: its series by rendered label text, in order.
pub struct Family<V> {
    inner: Arc<Inner<V>>,
}

struct Inner<V> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Box<str>, V>>,
}

impl<V> Clone for Family<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

pub type GaugeFamily = Family<Gauge>;
pub type IntGaugeFamily = Family<IntGauge>;
pub type CounterFamily = Family<Counter>;
pub type IntCounterFamily = Family<IntCounter>;

impl<V: Value> Family<V> {
    /// A family named `name` with these label names (at least one: a series without labels is
    /// a plain registry metric).
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        debug_assert!(!labels.is_empty(), "{name}: a family has labels");
        Self {
            inner: Arc::new(Inner {
                name,
                help,
                labels,
                series: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The series of these label values (one per label name, in order), created at zero.
    ///
    /// # Panics
    /// When the number of values is not the number of label names: a programming error, as in
    /// the `prometheus` crate.
    pub fn with_label_values(&self, values: &[&str]) -> V {
        let key = self.key(values);
        self.inner.series.lock().entry(key).or_default().clone()
    }

    /// The series of these label values, if it exists (nothing is created).
    pub fn get(&self, values: &[&str]) -> Option<V> {
        let key = self.key(values);
        self.inner.series.lock().get(&key).cloned()
    }

    /// Removes the series of these label values; false if there was none.
    pub fn remove_label_values(&self, values: &[&str]) -> bool {
        let key = self.key(values);
        self.inner.series.lock().remove(&key).is_some()
    }

    /// Series in the family.
    pub fn len(&self) -> usize {
        self.inner.series.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rendered label text of `values`: `a="x",b="y"`, each value escaped.
    fn key(&self, values: &[&str]) -> Box<str> {
        let names = self.inner.labels;
        assert_eq!(
            names.len(),
            values.len(),
            "{}: {} label values for {} labels",
            self.inner.name,
            values.len(),
            names.len()
        );
        let mut key = String::new();
        for (i, (name, value)) in names.iter().zip(values).enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(name);
            key.push_str("=\"");
            escape(value, true, &mut key);
            key.push('"');
        }
        key.into_boxed_str()
    }
}

/// What a scrape needs of a family, whatever its value type.
pub trait Encode: Send + Sync {
    fn name(&self) -> &'static str;

    /// Appends the family's text, or nothing when it has no series.
    fn encode(&self, out: &mut String);
}

impl<V: Value + Send + Sync> Encode for Family<V> {
    fn name(&self) -> &'static str {
        self.inner.name
    }

    fn encode(&self, out: &mut String) {
        let inner = &self.inner;
        let series = inner.series.lock();
        if series.is_empty() {
            return;
        }
        out.push_str("# HELP ");
        out.push_str(inner.name);
        out.push(' ');
        escape(inner.help, false, out);
        out.push_str("\n# TYPE ");
        out.push_str(inner.name);
        out.push(' ');
        out.push_str(V::KIND);
        out.push('\n');
        for (labels, value) in series.iter() {
            out.push_str(inner.name);
            out.push('{');
            out.push_str(labels);
            out.push_str("} ");
            value.write(out);
            out.push('\n');
        }
    }
}

/// Appends `text` escaped for the exposition: `\` and line feeds always, `"` in label values.
fn escape(text: &str, quote: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(family: &dyn Encode) -> String {
        let mut out = String::new();
        family.encode(&mut out);
        out
    }

    #[test]
    fn a_family_writes_its_series_in_label_order_and_nothing_when_empty() {
        let family = GaugeFamily::new("x_price", "Price.", &["code"]);
        assert_eq!(text(&family), "", "no series: no family");
        family.with_label_values(&["KRW-XRP"]).set(0.5);
        family.with_label_values(&["KRW-BTC"]).set(32_287_000.0);
        assert_eq!(
            text(&family),
            "# HELP x_price Price.\n# TYPE x_price gauge\n\
             x_price{code=\"KRW-BTC\"} 32287000\nx_price{code=\"KRW-XRP\"} 0.5\n"
        );
        assert_eq!(family.get(&["KRW-XRP"]).map(|g| g.get()), Some(0.5));
        assert!(family.get(&["KRW-ETH"]).is_none(), "get creates nothing");
        assert!(family.remove_label_values(&["KRW-BTC"]));
        assert!(!family.remove_label_values(&["KRW-BTC"]), "already gone");
        assert_eq!(family.len(), 1);
    }

    #[test]
    fn a_handle_and_the_family_share_one_value() {
        let family = IntCounterFamily::new("x_total", "Count.", &["type", "code"]);
        let handle = family.with_label_values(&["trade", "KRW-BTC"]);
        handle.inc();
        family.with_label_values(&["trade", "KRW-BTC"]).inc();
        assert_eq!(handle.get(), 2);
        assert!(text(&family).ends_with("x_total{type=\"trade\",code=\"KRW-BTC\"} 2\n"));
        assert!(text(&family).contains("# TYPE x_total counter\n"));
    }

    #[test]
    fn values_print_as_the_prometheus_crate_printed_them() {
        let gauge = Gauge::default();
        for (value, printed) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (-0.25, "-0.25"),
            (1e-7, "0.0000001"),
            (1_676_965_262.5, "1676965262.5"),
        ] {
            gauge.set(value);
            let mut out = String::new();
            gauge.write(&mut out);
            assert_eq!(out, printed);
            assert_eq!(out, value.to_string(), "the crate's encoder used Display");
        }
        let counter = Counter::default();
        counter.inc_by(0.5);
        counter.inc_by(-1.0);
        counter.inc_by(f64::NAN);
        assert_eq!(counter.get(), 0.5, "a counter never goes down");
        let int = IntGauge::default();
        int.set(-3);
        let mut out = String::new();
        int.write(&mut out);
        assert_eq!(out, "-3");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let family = IntGaugeFamily::new("x_info", "A \\ and\na line.", &["name"]);
        family.with_label_values(&["say \"hi\"\\\n"]).set(1);
        assert_eq!(
            text(&family),
            "# HELP x_info A \\\\ and\\na line.\n# TYPE x_info gauge\n\
             x_info{name=\"say \\\"hi\\\"\\\\\\n\"} 1\n"
        );
    }

    #[test]
    #[should_panic(expected = "1 label values for 2 labels")]
    fn the_wrong_number_of_label_values_is_a_programming_error() {
        IntGaugeFamily::new("x", "x", &["a", "b"]).with_label_values(&["only"]);
    }
}
