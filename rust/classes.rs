//! Size classes, shared by the pools and the heap: which block size serves a request.
//!
//! | sizes | classes | worst waste |
//! |---|---|---|
//! | 1..=16 | 16 (the smallest block: a free block holds two words) | 15 bytes |
//! | 17..=128 | every multiple of 8 (14 classes) | 7 bytes |
//! | 129..=2^20 | four per doubling: 2^k + j·2^(k-2), j = 1..=4 | under 25% (e.g. 161 → 192) |
//!
//! A request `(size, align)` is served by the class of
//! `round_up(max(size, align), align)`. That rounded size is itself a class
//! whenever it is a multiple of `align` and at most 2^20 (every multiple of
//! 8 up to 128, and above that every multiple of 2^(k-2) in (2^k, 2^(k+1)]),
//! so the class size is a multiple of the alignment; blocks are carved at
//! multiples of the class size from a chunk aligned to the class's largest
//! power-of-two divisor, hence every block is aligned. (libstdc++ gets this
//! wrong for sizes that are not multiples of the alignment: GCC PR 118681.)

use core::alloc::Layout;

/// Sizes up to this are served in steps of [`STEP`] bytes (the heap's
/// `SMALL_MAX`, the largest size it serves from pages, is another limit).
const STEP_MAX: usize = 128;
const STEP: usize = 8;
const STEP_CLASSES: usize = STEP_MAX / STEP;

/// The smallest class any resource hands out: 16 bytes, room for a free
/// block's encoded link and its double-free mark (the 8-byte class 0 stays
/// in the numbering, unused, so that the formula stays one rule).
pub const MIN_CLASS: usize = 1;

/// The largest block size any pool serves.
pub const MAX_CLASS_SIZE: usize = 1 << 20;

/// How many classes there are up to [`MAX_CLASS_SIZE`].
pub const CLASS_COUNT: usize = class_of_size(MAX_CLASS_SIZE) + 1;

/// The index of the smallest class that holds `size` bytes (`1..=MAX_CLASS_SIZE`).
#[inline(always)]
pub const fn class_of_size(size: usize) -> usize {
    if size <= STEP_MAX {
        return (size.saturating_sub(1)) / STEP;
    }
    // size in (2^k, 2^(k+1)]: k = log2(size - 1).
    let k = (size - 1).ilog2() as usize;
    let step = 1 << (k - 2);
    let j = (size - (1 << k)).div_ceil(step); // 1..=4
    STEP_CLASSES + (k - 7) * 4 + (j - 1)
}

/// Sizes up to this find their class in [`SMALL_TABLE`].
const TABLE_MAX: usize = 1024;

/// The class of every size up to [`TABLE_MAX`], indexed by `ceil(size / 8)`
/// (never below [`MIN_CLASS`]): every class boundary up to 1024 is a
/// multiple of 8, so the sizes of one 8-byte step share a class. A table
/// load replaces the branches of [`class_of_size`], which a stream of mixed
/// sizes mispredicts.
static SMALL_TABLE: [u8; TABLE_MAX / 8 + 1] = {
    let mut table = [MIN_CLASS as u8; TABLE_MAX / 8 + 1];
    let mut i = 1;
    while i < table.len() {
        let class = class_of_size(i * 8);
        table[i] = if class < MIN_CLASS { MIN_CLASS } else { class } as u8;
        i += 1;
    }
    table
};

/// The block size of class `index`.
#[inline(always)]
pub const fn class_size(index: usize) -> usize {
    if index < STEP_CLASSES {
        return (index + 1) * STEP;
    }
    let k = 7 + (index - STEP_CLASSES) / 4;
    let j = (index - STEP_CLASSES) % 4 + 1;
    (1 << k) + j * (1 << (k - 2))
}

/// The largest alignment a class guarantees; more aligned requests go to
/// upstream.
pub const MAX_CLASS_ALIGN: usize = 4096;

/// The class that serves `layout` (zero sizes are served as one byte; never
/// a class below [`MIN_CLASS`]), or
/// `None` if the request is larger than `largest` after rounding, or more
/// aligned than [`MAX_CLASS_ALIGN`].
#[inline(always)]
pub fn class_of(layout: Layout, largest: usize) -> Option<usize> {
    let align = layout.align();
    // `Layout` keeps size + align - 1 within isize::MAX: no overflow.
    let rounded = (layout.size().max(align).max(1) + align - 1) & !(align - 1);
    if rounded > largest || align > MAX_CLASS_ALIGN {
        return None;
    }
    if rounded <= TABLE_MAX {
        return Some(SMALL_TABLE[rounded.div_ceil(8)] as usize);
    }
    Some(class_of_size(rounded))
}

/// The alignment every block of class `index` gets: the class size's largest
/// power-of-two divisor (at most 4096, which divides every class above it).
pub fn class_align(index: usize) -> usize {
    let size = class_size(index);
    (1 << size.trailing_zeros()).min(MAX_CLASS_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_increasing_and_round_trip() {
        for i in 0..CLASS_COUNT {
            assert_eq!(class_of_size(class_size(i)), i, "class {i}");
            if i > 0 {
                assert!(class_size(i) > class_size(i - 1));
                assert_eq!(class_of_size(class_size(i - 1) + 1), i);
            }
        }
        assert_eq!(class_size(CLASS_COUNT - 1), MAX_CLASS_SIZE);
    }

    #[test]
    fn the_table_agrees_with_the_formula() {
        for size in 1..=TABLE_MAX {
            let layout = Layout::from_size_align(size, 1).unwrap();
            assert_eq!(class_of(layout, MAX_CLASS_SIZE), Some(class_of_size(size.max(16))), "size {size}");
        }
    }

    #[test]
    fn waste_is_bounded() {
        for size in 1..=MAX_CLASS_SIZE {
            let got = class_size(class_of_size(size));
            assert!(got >= size);
            if size <= STEP_MAX {
                assert!(got - size < STEP);
            } else {
                assert!((got - size) * 4 < got, "{size} -> {got}");
            }
        }
    }

    #[test]
    fn every_class_for_an_aligned_request_is_a_multiple_of_the_alignment() {
        for align in (0..=12).map(|s| 1usize << s) {
            for size in (0..5000).chain([8191, 8192, 100_000]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                let class = class_of(layout, MAX_CLASS_SIZE).unwrap();
                assert_eq!(class_size(class) % align, 0, "size {size} align {align}");
                assert!(class_size(class) >= size);
                assert!(class_align(class) >= align);
            }
        }
    }
}
