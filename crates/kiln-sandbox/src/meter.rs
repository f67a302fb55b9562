//! The heap limit, enforced by the allocator QuickJS allocates through, so
//! the engine knows for certain when the code ran out of memory.
//!
//! QuickJS's own `set_memory_limit` refuses the allocation before it reaches
//! any allocator, and when the heap is that full it often cannot even build
//! its `InternalError: out of memory`: it throws `null` instead, which reads
//! exactly like the code's own `throw null`. Metering here sets a flag on
//! every refusal, so an uncaught `null` (or out-of-memory error) is reported
//! as [`SandboxError::OutOfMemory`](kiln_core::sandbox::SandboxError) only when
//! the limit was really hit. The limit can also be raised a little after the
//! block ends, so its error can still be described.
//!
//! Allocations are also where a block yields its CPU turn (`cpu.rs`) when
//! it runs native code the interrupt handler does not reach: QuickJS calls
//! that handler every ten thousand or so back-edges and calls, which a loop
//! of large allocations (`a.push('x'.repeat(1 << 20))`) may never reach
//! before the heap is full.
//!
//! The allocator trait is the crate's main `unsafe`: `rquickjs::allocator::Allocator`
//! is an `unsafe trait` with raw-pointer methods. Every method delegates to
//! rquickjs's own [`RustAllocator`] with the caller's pointer unchanged, so
//! the safety contract is exactly the one that allocator already meets; this
//! type only adds bookkeeping around it.
#![allow(
    unsafe_code,
    reason = "the Allocator trait is unsafe; every method delegates to RustAllocator unchanged"
)]

use std::cell::{Cell, RefCell};
use std::ptr;
use std::rc::Rc;

use rquickjs::allocator::{Allocator, RustAllocator};

/// `RustAllocator` puts a header of this size before every block.
const HEADER_BYTES: usize = 8;

/// The bytes one block of `usable` payload bytes costs.
fn cost(usable: usize) -> usize {
    usable.saturating_add(HEADER_BYTES)
}

/// The bytes `RustAllocator` will use for a request of `size` bytes.
fn request_cost(size: usize) -> usize {
    cost(size.div_ceil(8).saturating_mul(8))
}

/// The heap's account, shared by the allocator (inside the runtime) and the
/// engine. Runtimes never leave their thread, so plain cells suffice.
pub(crate) struct Meter {
    used: Cell<usize>,
    /// The block's limit, once armed.
    limit: Cell<usize>,
    /// What allocations may reach: nothing stops them until the runtime and
    /// context exist (QuickJS and rquickjs do not survive failing to create
    /// them), then the limit, then a little more once the block has failed.
    ceiling: Cell<usize>,
    refused: Cell<bool>,
    /// Called before every allocation once the block runs.
    yield_point: RefCell<Option<Box<dyn Fn()>>>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("used", &self.used)
            .field("limit", &self.limit)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl Meter {
    pub(crate) fn new() -> Rc<Meter> {
        Rc::new(Meter {
            used: Cell::new(0),
            limit: Cell::new(usize::MAX),
            ceiling: Cell::new(usize::MAX),
            refused: Cell::new(false),
            yield_point: RefCell::new(None),
        })
    }

    /// Whether an allocation was refused since the runtime was created.
    pub(crate) fn refused(&self) -> bool {
        self.refused.get()
    }

    /// Starts enforcing `limit`, counting what is already allocated.
    pub(crate) fn arm(&self, limit: usize) {
        self.limit.set(limit);
        self.ceiling.set(limit);
    }

    /// Calls `point` before every allocation from now on.
    pub(crate) fn set_yield_point(&self, point: impl Fn() + 'static) {
        *self.yield_point.borrow_mut() = Some(Box::new(point));
    }

    /// Allows `extra` bytes past the limit, to describe the block's error
    /// once it has ended.
    pub(crate) fn allow_past_limit(&self, extra: usize) {
        self.ceiling.set(self.limit.get().saturating_add(extra));
    }

    /// Books `cost` more bytes, or records a refusal.
    fn reserve(&self, cost: usize) -> bool {
        if let Ok(point) = self.yield_point.try_borrow()
            && let Some(point) = point.as_ref()
        {
            point();
        }
        match self.used.get().checked_add(cost) {
            Some(used) if used <= self.ceiling.get() => true,
            _ => {
                self.refused.set(true);
                false
            }
        }
    }

    fn book(&self, cost: usize) {
        self.used.set(self.used.get().saturating_add(cost));
    }

    fn release(&self, cost: usize) {
        self.used.set(self.used.get().saturating_sub(cost));
    }
}

/// The allocator given to each runtime.
pub(crate) struct MeteredAllocator(pub(crate) Rc<Meter>);

// SAFETY: every method forwards to `RustAllocator`, which implements the
// trait's contract; the pointers passed to `dealloc`, `realloc` and
// `usable_size` come from QuickJS, which only hands back pointers this
// allocator (so `RustAllocator`) returned. Null pointers are handled here and
// never forwarded.
unsafe impl Allocator for MeteredAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.0.reserve(request_cost(size)) {
            return ptr::null_mut();
        }
        let block = RustAllocator.alloc(size);
        if !block.is_null() {
            // SAFETY: `block` was just returned by `RustAllocator`.
            self.0.book(cost(unsafe { RustAllocator::usable_size(block) }));
        }
        block
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        if !self.0.reserve(request_cost(total)) {
            return ptr::null_mut();
        }
        let block = RustAllocator.calloc(count, size);
        if !block.is_null() {
            // SAFETY: `block` was just returned by `RustAllocator`.
            self.0.book(cost(unsafe { RustAllocator::usable_size(block) }));
        }
        block
    }

    unsafe fn dealloc(&mut self, block: *mut u8) {
        if block.is_null() {
            return;
        }
        // SAFETY: the caller passes a block this allocator returned.
        unsafe {
            self.0.release(cost(RustAllocator::usable_size(block)));
            RustAllocator.dealloc(block);
        }
    }

    unsafe fn realloc(&mut self, block: *mut u8, new_size: usize) -> *mut u8 {
        if block.is_null() {
            return self.alloc(new_size);
        }
        // SAFETY: the caller passes a block this allocator returned; on
        // failure `RustAllocator::realloc` leaves it allocated, as booked.
        unsafe {
            let old = cost(RustAllocator::usable_size(block));
            let new = request_cost(new_size);
            if new > old && !self.0.reserve(new - old) {
                return ptr::null_mut();
            }
            let moved = RustAllocator.realloc(block, new_size);
            if !moved.is_null() {
                self.0.release(old);
                self.0.book(cost(RustAllocator::usable_size(moved)));
            }
            moved
        }
    }

    unsafe fn usable_size(block: *mut u8) -> usize {
        if block.is_null() {
            return 0;
        }
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { RustAllocator::usable_size(block) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_books_frees() {
        let meter = Meter::new();
        meter.arm(1024);
        let mut allocator = MeteredAllocator(meter.clone());
        let block = allocator.alloc(512);
        assert!(!block.is_null());
        assert_eq!(meter.used.get(), 520);
        assert!(allocator.alloc(600).is_null());
        assert!(meter.refused());
        // SAFETY: `block` came from this allocator.
        let grown = unsafe { allocator.realloc(block, 1000) };
        assert!(!grown.is_null());
        assert_eq!(meter.used.get(), 1008);
        // SAFETY: `grown` came from this allocator.
        unsafe { allocator.dealloc(grown) };
        assert_eq!(meter.used.get(), 0);
    }
}
