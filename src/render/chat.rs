//! The chat room (`compare --chat`): how its workloads were made, how each model shares its
//! rooms, what one way of sharing costs per delivery against another, and what each model did
//! with a slow member, generated from the figures. The section's tables of figures are
//! `render::document`'s, as every workload's.

use super::block::Block;
use super::format::{int, kib, mark, or_dash, pair, plus_minus, server_name, spread};
use crate::schema::{Cell, SharingCost, SlowMember, SlowVerdict, Summary};
use crate::workload::{Workload, CHAT_SIZE, CHAT_SLOW_SIZE, CHAT_TIMEOUT};

/// The section's heading and how its workloads were made.
pub fn about() -> Vec<Block> {
    vec![
        Block::Heading(2, "The chat room: what sharing costs".to_owned()),
        Block::Para(format!(
            "Every member joins one room (`--chat`), and every message it sends goes to every member of that room, itself included, in one order per room: state shared between connections, which echo never has. Each model shares its rooms its own way: a lock (the sender's thread or task fans out under the room's lock), a single owner (one loop, thread or task owns a room, and nothing is locked), or IPC (a hub process owns the rooms, and each member's process reaches it over a socket). `chat-r16-c64`: rooms of 16, 64 members; `chat-r128-c128`: one room of 128; `chat-r16-c1024`: rooms of 16, 1,024 members; each member sends {CHAT_SIZE}-byte messages in a closed loop (its next when its own comes back), and loadgen checks every delivery (from its own room, whole, once, in the room's one order). `chat-slow`: rooms of 16, 64 members, the last member of each room joining and never reading, {} messages so that its deliveries pass the server's queue (1 MiB, `--chat-queue`) and socket buffers within the run. A member the server does not let into its room within {:.1} s is *starved* (`S n/m`), a finding of the model (an iterative server or a pool serves only as many members as it has workers), not a failure. Deliveries/s are the deliveries received; delivery latency runs from a message's intended send time to each member's receipt, fan-out latency to its last member's; server CPU per delivery is the server's CPU over the deliveries.",
            super::format::bytes(CHAT_SLOW_SIZE as f64),
            CHAT_TIMEOUT.as_secs_f64(),
        )),
    ]
}

/// The cell of `Table::ChatDeliveries`: deliveries/s, and the members the server closed
/// where it closed any.
pub fn deliveries_figure(c: &Cell) -> String {
    let dropped = c.chat.as_ref().map_or(0, |x| x.members_dropped);
    let text = spread(c.throughput_msgs_per_s, int);
    match dropped {
        0 => mark(c, text),
        n => mark(c, format!("{text}, {n} dropped")),
    }
}

/// The cell of `Table::ChatLatency`: delivery p99 / fan-out p99.
pub fn latency_figures(c: &Cell) -> String {
    let fanout = c.chat.as_ref().and_then(|x| x.fanout_p99_us);
    mark(c, pair(c.latency_p99_us, fanout))
}

/// The cell of `Table::ChatCost`: server CPU per delivery, peak memory.
pub fn cost_figures(c: &Cell) -> String {
    let cpu = spread(c.server_cpu_us_per_msg, |v| format!("{v:.2}"));
    mark(c, format!("{cpu} / {}", or_dash(c.peak_pss_kib, kib)))
}

/// "How each model shares", "What sharing costs per delivery" and "A slow member", from the
/// summary's chat figures.
pub fn sharing(s: &Summary) -> Vec<Block> {
    if s.chat_models.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![Block::Heading(
        3,
        "How each model shares, and a slow member".to_owned(),
    )];
    let plain: Vec<String> = Workload::chat()[..2]
        .iter()
        .map(Workload::label)
        .filter(|l| s.workloads.contains(l))
        .collect();
    let mut header = vec!["model".to_owned(), "sharing".to_owned(), "how".to_owned()];
    header.extend(plain.iter().map(|l| format!("CPU µs/delivery {l}")));
    header.push("slow member (chat-slow)".to_owned());
    let rows = s
        .chat_models
        .iter()
        .map(|m| {
            let cells = s.cells_of(&m.model);
            let mut row = vec![server_name(s, &m.model), m.sharing.clone(), m.how.clone()];
            row.extend(plain.iter().map(|l| {
                let cpu = cells.get(l.as_str()).and_then(|c| c.server_cpu_us_per_msg);
                or_dash(cpu, |c| plus_minus(c.median, c.ci, |v| format!("{v:.2}")))
            }));
            row.push(or_dash(m.slow.as_ref(), slow_words));
            row
        })
        .collect();
    blocks.push(Block::Table(header, rows));
    blocks.extend(costs(s));
    blocks
}

/// A slow-member verdict in words, with its counts.
fn slow_words(v: &SlowMember) -> String {
    let growth = or_dash(v.memory_growth_kib, |g| {
        format!("{}{}", if g < 0.0 { "−" } else { "+" }, kib(g.abs()))
    });
    let starved = match v.starved {
        0 => String::new(),
        n => format!("; {n} members starved"),
    };
    match v.verdict {
        SlowVerdict::Dropped => format!(
            "dropped, and the rooms went on: {} closed of {} slow, nothing lost; memory {growth}{starved}",
            v.dropped, v.slow_members
        ),
        SlowVerdict::DroppedReaders => format!(
            "dropped readers too: {} closed of {} slow, readers that fell a whole queue behind among them; {} deliveries owed to them lost{starved}",
            v.dropped,
            v.slow_members,
            int(v.lost as f64)
        ),
        SlowVerdict::Stalled => format!(
            "stalled: readers lost {} deliveries; {} closed of {} slow{starved}",
            int(v.lost as f64),
            v.dropped,
            v.slow_members
        ),
        SlowVerdict::MemoryGrew => {
            format!("kept the slow members, and memory grew: {growth}{starved}")
        }
        SlowVerdict::Kept => format!(
            "kept the slow members within bounded memory ({growth}), the rooms going on{starved}"
        ),
        SlowVerdict::NotServed => format!("not served: the slow members were never let in{starved}"),
        SlowVerdict::NoData => "no figures".to_owned(),
    }
}

/// "What sharing costs per delivery": each way of sharing's models with their CPU per
/// delivery, workload by workload, then the compared pairs' ratios with their intervals.
fn costs(s: &Summary) -> Vec<Block> {
    let mut lines = Vec::new();
    for w in Workload::chat()
        .iter()
        .filter(|w| **w != Workload::ChatSlow)
    {
        let label = w.label();
        for sharing in ["lock", "single owner", "IPC"] {
            let figures: Vec<String> = s
                .chat_models
                .iter()
                .filter(|m| m.sharing == sharing)
                .filter_map(|m| {
                    let c = s.cells_of(&m.model).get(label.as_str()).copied()?;
                    let cpu = c.server_cpu_us_per_msg.filter(|_| c.status.has_figures())?;
                    Some(format!(
                        "`{}` {}",
                        m.model,
                        plus_minus(cpu.median, cpu.ci, |v| format!("{v:.2} µs"))
                    ))
                })
                .collect();
            if !figures.is_empty() {
                lines.push(format!("`{label}`, {sharing}: {}", figures.join(", ")));
            }
        }
    }
    lines.extend(s.sharing_costs.iter().map(cost_line));
    if lines.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Heading(3, "What sharing costs per delivery".to_owned()),
        Block::Para("Server CPU per delivery by way of sharing, each with its 95 % interval; then pairs of models that differ in how they share, the ratio of their CPU per delivery with its interval from the two cells' bootstraps, resample by resample (3 repeats or more on each side).".to_owned()),
        Block::List(lines),
    ]
}

/// One compared pair: `fork-per-client` (IPC) over `thread-per-client` (lock) in a workload.
fn cost_line(c: &SharingCost) -> String {
    let interval = match (&c.ratio_ci, &c.why) {
        (Some([low, high]), _) => format!(" (95 % interval {low:.2}–{high:.2})"),
        (None, Some(why)) => format!(" ({why})"),
        (None, None) => String::new(),
    };
    format!(
        "`{}`: `{}` ({}) pays {:.2}× the CPU per delivery of `{}` ({}){interval}",
        c.workload, c.model, c.sharing, c.ratio, c.against, c.against_sharing
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_with_their_counts() {
        let v = SlowMember {
            verdict: SlowVerdict::Dropped,
            slow_members: 4,
            dropped: 4,
            lost: 0,
            starved: 0,
            memory_growth_kib: Some(2048.0),
        };
        assert_eq!(
            slow_words(&v),
            "dropped, and the rooms went on: 4 closed of 4 slow, nothing lost; memory +2.0 MiB"
        );
        let stalled = SlowMember {
            verdict: SlowVerdict::Stalled,
            lost: 1200,
            dropped: 0,
            starved: 3,
            ..v.clone()
        };
        assert_eq!(
            slow_words(&stalled),
            "stalled: readers lost 1,200 deliveries; 0 closed of 4 slow; 3 members starved"
        );
    }
}
