-- min_profile: phase1
-- Seed §3.3 scaling indexes. Plain CREATE INDEX (not CONCURRENTLY) so the migration
-- stays one transaction; run it before loading data. The seed's rate_limits partial
-- index uses now(), which is not IMMUTABLE, so it is a plain (key, created_at) index here.

CREATE INDEX IF NOT EXISTS idx_orders_batch_assignment
ON orders (status, delivery_date, delivery_batch_id)
WHERE delivery_batch_id IS NULL;

CREATE INDEX IF NOT EXISTS idx_credits_ledger_balance
ON credits_ledger (consumer_id, created_at DESC, transaction_type)
INCLUDE (balance_after);

CREATE INDEX IF NOT EXISTS idx_order_items_order_product
ON order_items (order_id, product_id)
INCLUDE (quantity, unit_price, subtotal);

CREATE INDEX IF NOT EXISTS idx_batch_stops_driver_route
ON batch_stops (delivery_batch_id, sequence_number, status)
INCLUDE (address, estimated_arrival);

CREATE INDEX IF NOT EXISTS idx_rate_limits_cleanup
ON rate_limits (key, created_at);

-- Cursor pagination of the product list (seed §3.5: created_at DESC, id as tie-breaker).
CREATE INDEX IF NOT EXISTS idx_products_available_created
ON products (created_at DESC, id DESC)
WHERE is_available;
