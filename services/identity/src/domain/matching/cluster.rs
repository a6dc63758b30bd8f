//! Clusters from matched pairs: records linked by a chain of matches are one entity
//! (union–find with path halving and union by size).

/// Disjoint sets over `0..n`.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// The representative of `x`'s set.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Joins the sets of `a` and `b`.
    pub fn union(&mut self, a: u32, b: u32) {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
    }

    /// A cluster number per element, numbered 0.. in order of each cluster's first element.
    pub fn labels(&mut self) -> Vec<u32> {
        let n = self.parent.len();
        let mut number = vec![u32::MAX; n];
        let mut next = 0;
        (0..n as u32)
            .map(|x| {
                let root = self.find(x) as usize;
                if number[root] == u32::MAX {
                    number[root] = next;
                    next += 1;
                }
                number[root]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chains_join() {
        let mut uf = UnionFind::new(6);
        uf.union(4, 1);
        uf.union(1, 3);
        uf.union(5, 2);
        assert_eq!(uf.labels(), vec![0, 1, 2, 1, 1, 2]);
    }

    proptest! {
        /// Two elements share a label exactly when a path of unions joins them.
        #[test]
        fn labels_are_connected_components(edges in proptest::collection::vec((0u32..20, 0u32..20), 0..30)) {
            let mut uf = UnionFind::new(20);
            for &(a, b) in &edges {
                uf.union(a, b);
            }
            let labels = uf.labels();
            // Reference: repeated relaxation of component ids.
            let mut comp: Vec<u32> = (0..20).collect();
            loop {
                let mut changed = false;
                for &(a, b) in &edges {
                    let m = comp[a as usize].min(comp[b as usize]);
                    for x in [a, b] {
                        if comp[x as usize] != m {
                            comp[x as usize] = m;
                            changed = true;
                        }
                    }
                }
                if !changed { break; }
            }
            for x in 0..20 {
                for y in 0..20 {
                    prop_assert_eq!(labels[x] == labels[y], comp[x] == comp[y]);
                }
            }
        }
    }
}
