//! The process metrics (`process_*`), read from `/proc/self` at each scrape (a few small
//! reads; Linux).
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The usual `process_*` metrics, read from `/proc/self` at each scrape (a few small reads).
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// What `/proc/self` says about the process; `None` where it could not be read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads the current process.
    pub fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let mut p = stat
            .as_deref()
            .map(|s| {
                parse_stat(
                    s,
                    rustix::param::clock_ticks_per_second(),
                    rustix::param::page_size() as u64,
                    btime,
                )
            })
            .unwrap_or_default();
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        p.max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        p
    }
}

/// Parses `/proc/self/stat` (proc(5)): fields after the `(comm)`, which may hold spaces.
fn parse_stat(stat: &str, ticks: u64, page: u64, btime: Option<u64>) -> ProcessStats {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return ProcessStats::default();
    };
    // rest[0] is field 3 (state).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = ticks.max(1) as f64;
    ProcessStats {
        cpu_seconds: field(14)
            .zip(field(15))
            .map(|(u, s)| (u + s) as f64 / ticks),
        start_time_seconds: field(22)
            .zip(btime)
            .map(|(start, boot)| boot as f64 + start as f64 / ticks),
        virtual_bytes: field(23),
        resident_bytes: field(24).map(|pages| pages * page),
        threads: field(20),
        open_fds: None,
        max_fds: None,
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = ProcessStats::read();
        if let Some(v) = p.cpu_seconds {
            let m = ConstCounter::new(v);
            let e = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                m.metric_type(),
            )?;
            m.encode(e)?;
        }
        let gauges: [(&str, &str, Option<f64>); 6] = [
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                p.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                p.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                p.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                p.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Limit of open file descriptors (soft)",
                p.max_fds.map(|v| v as f64),
            ),
            (
                "process_threads",
                "Threads of the process",
                p.threads.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let m = ConstGauge::new(v);
                let e = encoder.encode_descriptor(name, help, None, m.metric_type())?;
                m.encode(e)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_read_past_a_command_with_spaces() {
        // proc(5): pid (comm) state ppid ... utime(14) stime(15) ... num_threads(20)
        // itrealvalue(21) starttime(22) vsize(23) rss(24) ...
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[0] = "S".into();
        fields[14 - 3] = "250".into(); // utime
        fields[15 - 3] = "50".into(); // stime
        fields[20 - 3] = "7".into(); // threads
        fields[22 - 3] = "1000".into(); // starttime, ticks after boot
        fields[23 - 3] = "123456789".into(); // vsize
        fields[24 - 3] = "100".into(); // rss pages
        let stat = format!("4242 (regauth (a) b) {}\n", fields.join(" "));
        let p = parse_stat(&stat, 100, 4096, Some(1_700_000_000));
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.threads, Some(7));
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(p.virtual_bytes, Some(123_456_789));
        assert_eq!(p.resident_bytes, Some(409_600));
        assert_eq!(
            parse_stat("garbage", 100, 4096, None),
            ProcessStats::default()
        );
    }

    #[test]
    fn this_process_is_readable() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.unwrap() > 0);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap());
        assert!(p.threads.unwrap() >= 1);
        assert!(p.start_time_seconds.unwrap() > 1_500_000_000.0);
    }
}
