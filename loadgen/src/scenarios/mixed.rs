//! `mixed`: the sale page under a flash sale: one iteration in five is a
//! purchase (`flash_sale`), the others are reads (`browse`).

use std::time::Duration;

use goose::goose::{GooseUser, TransactionError};
use rand::Rng;

use super::{browse, flash_sale, Ctx};

/// Share of iterations that buy.
pub const PURCHASE_SHARE: f64 = 0.2;

pub async fn iteration(
    user: &mut GooseUser,
    ctx: &Ctx,
    lag: Duration,
) -> Result<bool, Box<TransactionError>> {
    let buy = rand::rng().random_bool(PURCHASE_SHARE);
    if buy {
        flash_sale::iteration(user, ctx, lag).await
    } else {
        browse::iteration(user, ctx, lag).await
    }
}
