-- 月简报 · Monthly briefing
--
-- One row per department, over the cases of region $region and every region
-- below it ('' for all regions), for the calendar month $month ('YYYY-MM').
-- Completion figures count cases by the date they were completed, intake
-- figures by the date they were accepted; withdrawn cases count in no rate;
-- a rate with a zero denominator is NULL; rates are fractions 0–1.
--
-- The score's weights are the numbers in the `scored` step below: edit them
-- here (this file is read at run time; no rebuild).
WITH
period AS (
    SELECT CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AS start_date,
           CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE) AS end_date
),
scope AS (
    SELECT c.*
    FROM cases c
    WHERE CAST($region AS VARCHAR) = ''
       OR c.region = CAST($region AS VARCHAR)
       OR c.region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR))
),
intake AS (
    SELECT department,
           COUNT(*) AS accepted,
           SUM(CASE WHEN status <> 'withdrawn' THEN 1 ELSE 0 END) AS accepted_kept,
           SUM(CASE WHEN status <> 'withdrawn' AND kind = 'immediate' THEN 1 ELSE 0 END) AS immediate_kept
    FROM scope, period
    WHERE accepted_date >= start_date AND accepted_date < end_date
    GROUP BY department
),
completion AS (
    SELECT department,
           COUNT(*) AS completed,
           SUM(CASE WHEN on_time THEN 1 ELSE 0 END) AS on_time_n,
           SUM(CASE WHEN limit_days >= 1 THEN 1 ELSE 0 END) AS limited_n,
           SUM(CASE WHEN early THEN 1 ELSE 0 END) AS early_n,
           SUM(CASE WHEN completed_date = accepted_date THEN 1 ELSE 0 END) AS onsite_n,
           SUM(CASE WHEN used_days <= 10 THEN 1 ELSE 0 END) AS within_10_n,
           AVG(CAST(used_days AS DOUBLE)) AS avg_used_days,
           SUM(CASE WHEN rating IS NOT NULL THEN 1 ELSE 0 END) AS rated_n
    FROM scope, period
    WHERE status = 'completed' AND completed_date >= start_date AND completed_date < end_date
    GROUP BY department
),
open_at_end AS (
    -- open at 00:00 of the next month's first day, due before that day
    SELECT department, COUNT(*) AS overdue_open
    FROM scope, period
    WHERE accepted_date < end_date
      AND (closed_date IS NULL OR closed_date >= end_date)
      AND due_date < end_date
    GROUP BY department
),
rating AS (
    SELECT s.department,
           COUNT(*) AS ratings_n,
           SUM(CASE WHEN e.rating >= 3 THEN 1 ELSE 0 END) AS good_n
    FROM events e
    JOIN scope s ON e.case_id = s.case_id
    CROSS JOIN period
    WHERE e.type = 'evaluated' AND e.occurred_date >= start_date AND e.occurred_date < end_date
    GROUP BY s.department
),
cards AS (
    SELECT s.department,
           SUM(CASE WHEN a.level = 'red' THEN 1 ELSE 0 END) AS red_alerts,
           SUM(CASE WHEN a.level = 'yellow' THEN 1 ELSE 0 END) AS yellow_alerts
    FROM alerts a
    JOIN scope s ON a.case_id = s.case_id
    CROSS JOIN period
    WHERE NOT a.retracted AND a.raised_date >= start_date AND a.raised_date < end_date
    GROUP BY s.department
),
compression AS (
    SELECT department,
           1.0 - CAST(SUM(promised_days) AS DOUBLE) / CAST(SUM(statutory_days) AS DOUBLE) AS compression_rate
    FROM items
    WHERE statutory_days > 0
    GROUP BY department
),
departments AS (
    SELECT department FROM intake
    UNION SELECT department FROM completion
    UNION SELECT department FROM open_at_end
    UNION SELECT department FROM rating
    UNION SELECT department FROM cards
),
figures AS (
    SELECT d.department,
           COALESCE(i.accepted, 0) AS accepted,
           COALESCE(c.completed, 0) AS completed,
           CAST(c.on_time_n AS DOUBLE) / NULLIF(c.completed, 0) AS on_time_rate,
           CAST(c.early_n AS DOUBLE) / NULLIF(c.limited_n, 0) AS early_rate,
           CAST(c.onsite_n AS DOUBLE) / NULLIF(c.completed, 0) AS onsite_rate,
           CAST(i.immediate_kept AS DOUBLE) / NULLIF(i.accepted_kept, 0) AS immediate_share,
           CAST(c.within_10_n AS DOUBLE) / NULLIF(c.completed, 0) AS within_10_days_rate,
           c.avg_used_days,
           COALESCE(o.overdue_open, 0) AS overdue_open,
           p.compression_rate,
           CAST(c.rated_n AS DOUBLE) / NULLIF(c.completed, 0) AS evaluation_rate,
           CAST(r.good_n AS DOUBLE) / NULLIF(r.ratings_n, 0) AS good_rating_rate,
           COALESCE(k.red_alerts, 0) AS red_alerts,
           COALESCE(k.yellow_alerts, 0) AS yellow_alerts
    FROM departments d
    LEFT JOIN intake i ON i.department = d.department
    LEFT JOIN completion c ON c.department = d.department
    LEFT JOIN open_at_end o ON o.department = d.department
    LEFT JOIN rating r ON r.department = d.department
    LEFT JOIN cards k ON k.department = d.department
    LEFT JOIN compression p ON p.department = d.department
),
scored AS (
    SELECT f.*,
           40 * COALESCE(on_time_rate, 0)
         + 20 * COALESCE(early_rate, 0)
         + 20 * COALESCE(good_rating_rate, 0)
         + 10 * COALESCE(evaluation_rate, 0)
         + CASE WHEN completed = 0 THEN 10
                ELSE 10 * GREATEST(0.0, 1.0 - CAST(red_alerts AS DOUBLE) / completed) END AS score
    FROM figures f
)
SELECT CAST($region AS VARCHAR) AS region,
       department, accepted, completed, on_time_rate, early_rate, onsite_rate, immediate_share,
       within_10_days_rate, avg_used_days, overdue_open, compression_rate, evaluation_rate,
       good_rating_rate, red_alerts, yellow_alerts, score,
       RANK() OVER (ORDER BY ROUND(score, 4) DESC) AS rank
FROM scored
ORDER BY rank, department
