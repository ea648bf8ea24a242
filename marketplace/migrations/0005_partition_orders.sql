-- min_profile: phase3
-- Seed §5.3: orders partitioned by month on created_at. Same columns as before;
-- the primary key becomes (id, created_at) because a partitioned table's unique keys
-- must contain the partition key, and ids keep coming from the old sequence.
-- Partitions: 2024-01 .. 2027-12 plus a DEFAULT partition so no insert can fail;
-- create_next_partition() adds months ahead (the seed schedules it with pg_cron).

ALTER SEQUENCE orders_id_seq OWNED BY NONE;

CREATE TABLE orders_partitioned (
    id                       bigint NOT NULL DEFAULT nextval('orders_id_seq'),
    consumer_id              bigint NOT NULL REFERENCES profiles (id),
    status                   text NOT NULL DEFAULT 'pending',
    subtotal                 numeric(12, 2) NOT NULL,
    delivery_fee             numeric(12, 2) NOT NULL DEFAULT 0,
    credits_applied          numeric(12, 2) NOT NULL DEFAULT 0,
    total_amount             numeric(12, 2) NOT NULL,
    amount_charged           numeric(12, 2) NOT NULL DEFAULT 0,
    delivery_date            date NOT NULL,
    delivery_batch_id        bigint REFERENCES delivery_batches (id),
    stripe_payment_intent_id text,
    address                  text,
    zip_code                 text,
    lon                      double precision,
    lat                      double precision,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

DO $$
DECLARE
    m date := DATE '2024-01-01';
BEGIN
    WHILE m < DATE '2028-01-01' LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF orders_partitioned FOR VALUES FROM (%L) TO (%L)',
            'orders_' || to_char(m, 'YYYY_MM'), m, (m + INTERVAL '1 month')::date);
        m := (m + INTERVAL '1 month')::date;
    END LOOP;
END $$;
CREATE TABLE orders_default PARTITION OF orders_partitioned DEFAULT;

INSERT INTO orders_partitioned SELECT * FROM orders;

-- The matviews read "orders": rebuild them on the new table.
DROP MATERIALIZED VIEW IF EXISTS daily_revenue;
DROP MATERIALIZED VIEW IF EXISTS product_performance;
DROP TABLE orders;
ALTER TABLE orders_partitioned RENAME TO orders;
ALTER SEQUENCE orders_id_seq OWNED BY orders.id;
CREATE INDEX orders_consumer_idx ON orders (consumer_id);
CREATE INDEX IF NOT EXISTS idx_orders_batch_assignment
ON orders (status, delivery_date, delivery_batch_id)
WHERE delivery_batch_id IS NULL;

CREATE MATERIALIZED VIEW daily_revenue AS
SELECT
    date_trunc('day', created_at)::date AS date,
    count(*)                            AS order_count,
    sum(total_amount)                   AS total_revenue,
    avg(total_amount)                   AS avg_order_value,
    count(DISTINCT consumer_id)         AS unique_customers
FROM orders
WHERE status IN ('paid', 'completed', 'delivered')
GROUP BY 1;
CREATE UNIQUE INDEX daily_revenue_date_idx ON daily_revenue (date);

CREATE MATERIALIZED VIEW product_performance AS
SELECT
    p.id,
    p.name,
    p.farm_profile_id,
    count(oi.id)                   AS times_ordered,
    coalesce(sum(oi.quantity), 0)  AS total_quantity_sold,
    coalesce(sum(oi.subtotal), 0)  AS total_revenue,
    avg(oi.unit_price)             AS avg_price
FROM products p
JOIN order_items oi ON oi.product_id = p.id
JOIN orders o ON o.id = oi.order_id
WHERE o.status IN ('paid', 'completed', 'delivered')
GROUP BY p.id, p.name, p.farm_profile_id;
CREATE UNIQUE INDEX product_performance_id_idx ON product_performance (id);

CREATE OR REPLACE FUNCTION create_next_partition() RETURNS void AS $$
DECLARE
    next_month date := date_trunc('month', current_date + INTERVAL '2 months')::date;
    partition_name text := 'orders_' || to_char(next_month, 'YYYY_MM');
BEGIN
    IF to_regclass(partition_name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF orders FOR VALUES FROM (%L) TO (%L)',
                       partition_name, next_month, (next_month + INTERVAL '1 month')::date);
    END IF;
END;
$$ LANGUAGE plpgsql;
