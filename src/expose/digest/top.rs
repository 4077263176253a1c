//! The first `k` items of a stream in a total order, held in O(k) memory: how the digest's
//! sections and `/api/v1/vulnerabilities` bound what one request builds, however many findings or
//! vulnerabilities match. Same result as sorting everything and keeping `k`, provided the order is
//! total (ties broken by an id or a sequence number). Pure.

use std::cmp::Ordering;

/// At most `2 k` items are held: when that many have arrived, the first `k` are selected (linear
/// time) and the rest dropped, so pushing `n` items costs O(n) plus a final O(k log k) sort.
pub(crate) struct Top<T> {
    k: usize,
    order: fn(&T, &T) -> Ordering,
    items: Vec<T>,
    seen: usize,
}

impl<T> Top<T> {
    /// Keeps the first `k` by `order` (`usize::MAX`: everything).
    pub(crate) fn new(k: usize, order: fn(&T, &T) -> Ordering) -> Self {
        Top {
            k,
            order,
            items: Vec::new(),
            seen: 0,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        self.seen += 1;
        if self.k == 0 {
            return;
        }
        self.items.push(item);
        if self.items.len() >= self.k.saturating_mul(2) {
            self.items.select_nth_unstable_by(self.k - 1, self.order);
            self.items.truncate(self.k);
        }
    }

    /// How many were pushed.
    pub(crate) fn seen(&self) -> usize {
        self.seen
    }

    /// How many are held now (never more than twice `k`).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.items.len()
    }

    /// The first `k`, in order.
    pub(crate) fn into_sorted(mut self) -> Vec<T> {
        self.items.sort_by(self.order);
        self.items.truncate(self.k);
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrambled sequence with repeated keys: (key, position).
    fn items(n: usize) -> Vec<(u32, usize)> {
        (0..n).map(|i| (((i * 7919) % 97) as u32, i)).collect()
    }

    fn order(a: &(u32, usize), b: &(u32, usize)) -> Ordering {
        b.0.cmp(&a.0).then(a.1.cmp(&b.1))
    }

    #[test]
    fn keeps_what_a_full_sort_keeps_and_holds_at_most_twice_k() {
        for (n, k) in [
            (0, 5),
            (3, 5),
            (10, 5),
            (1000, 1),
            (1000, 7),
            (5000, 100),
            (50, 0),
        ] {
            let mut top = Top::new(k, order);
            for x in items(n) {
                top.push(x);
                assert!(top.held() <= 2 * k.max(1), "n {n} k {k}: {}", top.held());
            }
            assert_eq!(top.seen(), n);
            let mut want = items(n);
            want.sort_by(order);
            want.truncate(k);
            assert_eq!(top.into_sorted(), want, "n {n} k {k}");
        }
    }

    #[test]
    fn without_a_bound_everything_is_kept_in_order() {
        let mut top = Top::new(usize::MAX, order);
        for x in items(300) {
            top.push(x);
        }
        assert_eq!(top.held(), 300);
        let mut want = items(300);
        want.sort_by(order);
        assert_eq!(top.into_sorted(), want);
    }
}
