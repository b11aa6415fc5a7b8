//! The report's section on load agents (`compare --agents`): where the load and the servers
//! ran, and each agent's part of every cell: its throughput, its CPU use and whether it was
//! saturated, and how late after the common start it began.

use super::block::Block;
use super::format::{int, percent, server_name};
use crate::schema::{AgentFigures, Summary};

/// The section, where the comparison ran agents or a server elsewhere; nothing otherwise.
pub fn load_agents(s: &Summary) -> Vec<Block> {
    let Some(hosts) = &s.environment.hosts else {
        return Vec::new();
    };
    let launcher = match hosts.launcher.as_str() {
        "" => "direct exec".to_owned(),
        l => format!("`{l}` (direct exec for `local`)"),
    };
    let server = match (&hosts.server_host, &hosts.server_addr) {
        (Some(host), Some(addr)) => format!(
            "on host `{host}`, listening on `{addr}`, sampled there by `echobench serve --report`"
        ),
        (None, Some(addr)) => format!("here, listening on `{addr}`"),
        _ => "here, on loopback".to_owned(),
    };
    let agents =
        match hosts.agents.is_empty() {
            true => "loadgen ran inside echobench".to_owned(),
            false => {
                format!(
            "the load of every run was split over {} agents ({}), started through {launcher}",
            hosts.agents.len(),
            hosts.agents.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
        )
            }
        };
    let mut blocks = vec![
        Block::Heading(2, "Load agents".to_owned()),
        Block::Para(format!(
            "Servers ran {server}; {agents}. Each agent ran its slice of the run's connections and of its one open-loop schedule (`--conn-offset`/`--conn-total`), all starting at one time set from each host's measured clock offset; a clock off by more than one interval ({} ms), or a start later than that, fails the run. The run's figures add the agents' histograms, interval by interval. loadgen's CPU use for a run is the busiest machine's: agents pinned to the same CPUs of one machine add up (such agents give the CPU up after every batch of events, so that none waits a whole time slice with its echoes unread), and above 90 % the cell is marked loadgen-bound.",
            (s.resampling.interval_s * 1e3).round()
        )),
    ];
    let most = s.cells.iter().map(|c| c.agents.len()).max().unwrap_or(0);
    if most == 0 {
        return blocks;
    }
    let mut header = vec!["model".to_owned(), "workload".to_owned()];
    header.extend((1..=most).map(|i| format!("agent {i}")));
    let rows = s
        .cells
        .iter()
        .filter(|c| !c.agents.is_empty())
        .map(|c| {
            let mut row = vec![server_name(s, &c.model), c.label.clone()];
            row.extend((0..most).map(|i| c.agents.get(i).map_or_else(String::new, agent_cell)));
            row
        })
        .collect();
    blocks.push(Block::Para(
        "Each agent: host, connections, median messages/s, median CPU use over its cores, the latest start after the common one; saturated repeats marked.".to_owned(),
    ));
    blocks.push(Block::Table(header, rows));
    blocks
}

/// One agent's figures in a cell, in one line.
fn agent_cell(a: &AgentFigures) -> String {
    let mut text = format!("`{}` ×{}", a.host, a.connections);
    if let Some(t) = &a.throughput_msgs_per_s {
        text += &format!(": {} msgs/s", int(t.median));
    }
    if let Some(cpu) = &a.loadgen_cpu_ratio {
        text += &format!(", CPU {}", percent(cpu.median));
    }
    if let Some(late) = a.start_late_ms_max {
        text += &format!(", start +{late:.1} ms");
    }
    if a.saturated_repeats > 0 {
        text += &format!(", saturated in {}", a.saturated_repeats);
    }
    text
}
