-- min_profile: phase3
-- Seed §5.4: admin analytics read precomputed views, refreshed by the service
-- (POST /admin/analytics/refresh, or periodically) with REFRESH ... CONCURRENTLY.
-- Revenue counts paid orders too: in this model most orders are still 'paid' when
-- analytics are read, and the live queries (phase0-2) use the same status set.

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_revenue AS
SELECT
    date_trunc('day', created_at)::date AS date,
    count(*)                            AS order_count,
    sum(total_amount)                   AS total_revenue,
    avg(total_amount)                   AS avg_order_value,
    count(DISTINCT consumer_id)         AS unique_customers
FROM orders
WHERE status IN ('paid', 'completed', 'delivered')
GROUP BY 1;

CREATE UNIQUE INDEX IF NOT EXISTS daily_revenue_date_idx ON daily_revenue (date);

CREATE MATERIALIZED VIEW IF NOT EXISTS product_performance AS
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

CREATE UNIQUE INDEX IF NOT EXISTS product_performance_id_idx ON product_performance (id);
