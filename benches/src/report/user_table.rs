//! The user-scenario table (scenarios 9 to 14, issue 14): one column per
//! peer of `crate::peers`, ratios of evbus to four of them, and a
//! cell that can say why a figure is missing.

use crate::peers::{Item, Job, NotPossible, PeerKind, dispatch};

/// One figure, or why there is none.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    /// A measured figure.
    Value(f64),
    /// No figure: "not possible: ...", "> 20 s", "–".
    Text(String),
}

impl Cell {
    pub(crate) fn none() -> Self {
        Cell::Text("–".into())
    }

    fn value(&self) -> Option<f64> {
        match self {
            Cell::Value(v) => Some(*v),
            Cell::Text(_) => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Cell::Value(v) => super::fmt(*v),
            Cell::Text(t) => t.clone(),
        }
    }
}

/// One line of the user-scenario table: a cell per [`PeerKind::ALL`].
pub(crate) struct UserRow {
    pub(crate) scenario: String,
    pub(crate) unit: &'static str,
    pub(crate) cells: Cells,
    pub(crate) note: String,
}

impl UserRow {
    /// The cell of `kind`.
    pub(crate) fn cell(&self, kind: PeerKind) -> &Cell {
        &self.cells[index(kind)]
    }
}

/// `kind`'s column.
pub(crate) fn index(kind: PeerKind) -> usize {
    PeerKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

/// A cell per peer, in [`PeerKind::ALL`]'s order.
pub(crate) type Cells = [Cell; PeerKind::ALL.len()];

/// A row with every cell "–", to fill in by [`index`].
pub(crate) fn empty_cells() -> Cells {
    std::array::from_fn(|_| Cell::none())
}

/// The ratio columns: evbus ÷ each of these peers.
const RATIO_TO: [(PeerKind, &str); 5] = [
    (PeerKind::Tokio, "tokio"),
    (PeerKind::Crossbeam, "crossbeam"),
    (PeerKind::Disruptor, "disruptor"),
    (PeerKind::Rtrb, "rtrb"),
    (PeerKind::ArrayQueue, "ArrayQueue"),
];

/// Runs `job` for every peer, interleaved round by round (evbus, single
/// producer, tokio, ..., evbus, ...), and returns, for each of the job's
/// outputs, a cell per peer: the median over rounds, or why the peer could
/// not run it.
pub(crate) fn run_all<T: Item, J: Job<T, Out = Result<Vec<f64>, NotPossible>>>(
    rounds: usize,
    job: &mut J,
) -> Vec<Cells> {
    let mut got: Vec<Result<Vec<Vec<f64>>, NotPossible>> =
        PeerKind::ALL.iter().map(|_| Ok(Vec::new())).collect();
    for _ in 0..rounds {
        for (at, kind) in PeerKind::ALL.into_iter().enumerate() {
            let Ok(runs) = &mut got[at] else { continue };
            match dispatch(kind, job) {
                Ok(figures) => runs.push(figures),
                Err(why) => got[at] = Err(why),
            }
        }
    }
    let outputs = got
        .iter()
        .filter_map(|g| g.as_ref().ok()?.first().map(Vec::len))
        .max()
        .unwrap_or(0);
    (0..outputs)
        .map(|out| {
            std::array::from_fn(|at| match &got[at] {
                Ok(runs) if !runs.is_empty() => {
                    Cell::Value(super::median(runs.iter().map(|r| r[out]).collect()))
                }
                Ok(_) => Cell::none(),
                Err(NotPossible(why)) => Cell::Text(why.clone()),
            })
        })
        .collect()
}

/// Prints the table, then what each peer's figures mean.
pub(crate) fn print(rows: &[UserRow]) {
    let mut head = String::from("| scenario | unit |");
    let mut rule = String::from("|---|---|");
    for kind in PeerKind::ALL {
        head += &format!(" {} |", kind.name());
        rule += "---:|";
    }
    for (_, short) in RATIO_TO {
        head += &format!(" evbus ÷ {short} |");
        rule += "---:|";
    }
    println!("{head} note |");
    println!("{rule}---|");
    for r in rows {
        let mut line = format!("| {} | {} |", r.scenario, r.unit);
        for cell in &r.cells {
            line += &format!(" {} |", cell.show());
        }
        let evbus = r.cell(PeerKind::Evbus).value();
        for (kind, _) in RATIO_TO {
            let ratio = evbus
                .zip(r.cell(kind).value())
                .map_or("–".into(), |(e, p)| format!("{:.2}", e / p));
            line += &format!(" {ratio} |");
        }
        println!("{line} {} |", r.note);
    }
    println!();
    println!("What each peer does (every one used as its own docs recommend):");
    println!();
    for kind in PeerKind::ALL {
        println!("- **{}**: {}.", kind.name(), kind.semantics());
    }
}
