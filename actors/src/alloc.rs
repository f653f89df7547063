//! A global allocator that survives allocations sized by outside input.
//!
//! Allocations of a gigabyte or more are served by an `mmap` with
//! `MAP_NORESERVE`: address space only, with memory committed page by page
//! as it is touched, so a size read from outside the process that is never
//! filled costs a few pages instead of an abort. Smaller allocations go to
//! the system allocator unchanged.
//!
//! The request path does not depend on it: the decoder checks every count
//! a request announces against the bytes left before it reserves anything
//! (`connection::frame`), with any allocator, so an embedded broker is
//! protected too. The broker binary installs this one as a backstop for
//! sizes taken from anywhere else, such as a damaged segment file.
//!
//! Use it in a binary with
//! `#[global_allocator] static ALLOC: actorlog_actors::alloc::Guarded = actorlog_actors::alloc::Guarded;`.

// The one module of the engine that needs unsafe code: an allocator is
// unsafe by its trait, and `mmap` has no safe wrapper that returns raw memory.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// From this size on, allocations are lazily backed mappings.
const HUGE: usize = 1 << 30;
/// `mmap` returns page-aligned memory; larger alignments use the system.
const PAGE: usize = 4096;

/// The allocator: huge allocations are lazily backed mappings, the rest
/// goes to the system allocator.
pub struct Guarded;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

/// A fresh anonymous mapping of `size` bytes, or null.
///
/// # Safety
///
/// The caller must release it with `munmap` and the same size.
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every huge block comes from `map` and goes back through `munmap`
// with the same size (the layout the caller passes back); everything else is
// the system allocator's, untouched.
unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: `dealloc` unmaps it with the size of this layout.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: the caller's layout, passed on (GlobalAlloc's contract).
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Fresh anonymous pages are zero.
            // SAFETY: `dealloc` unmaps it with the size of this layout.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: the caller's layout, passed on (GlobalAlloc's contract).
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: a huge layout's block came from `map` with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: a small layout's block came from the system allocator.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: both sizes are the system allocator's, and the caller
            // keeps GlobalAlloc's contract for `ptr` and `layout`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_layout` has a non-zero size (it is at least `layout`'s
        // or huge) and a valid alignment, checked by `from_size_align`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the sizes and
            // do not overlap (the new one was just allocated).
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_untouched_allocation_costs_nothing() {
        let layout = Layout::from_size_align(400 << 30, 8).unwrap();
        // SAFETY: every block is used within its size and freed with its
        // layout.
        unsafe {
            let p = Guarded.alloc(layout);
            assert!(!p.is_null(), "400 GiB of address space");
            p.write(7);
            p.add(layout.size() - 1).write(9);
            let q = Guarded.realloc(p, layout, 64);
            assert_eq!(q.read(), 7);
            Guarded.dealloc(q, Layout::from_size_align(64, 8).unwrap());
        }
    }

    #[test]
    fn small_allocations_use_the_system() {
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: every block is used within its size and freed with its
        // layout.
        unsafe {
            let p = Guarded.alloc_zeroed(layout);
            assert_eq!(p.read(), 0);
            let q = Guarded.realloc(p, layout, 128);
            Guarded.dealloc(q, Layout::from_size_align(128, 8).unwrap());
        }
    }
}
