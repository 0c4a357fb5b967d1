-- 月简报 · Monthly briefing
--
-- One row per department, over the cases of region $region and every region
-- below it ('' for all regions), for the calendar month $month ('YYYY-MM').
-- Completion figures count cases by the date they were completed, intake
-- figures by the date they were accepted; withdrawn cases count in no rate;
-- a rate with a zero denominator is NULL; rates are fractions 0–1.
-- unlisted_cases (清单外办件数): cases accepted in the period whose item is
-- not in the catalogue (their `kind` is NULL; followed with
-- rules.unlisted_item = "card"). joint_delays (联办拖延件数): the
-- department's sub-cases that made their joint parent late (completed after
-- the parent's due date, or still open at 00:00 of the day after it: the
-- parent's late_departments names them), counted in the month of the
-- parent's due date.
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
-- Ratings and cards per case first, then every figure in one pass over the
-- scope (each reference to a view is computed again: `scope`, and the
-- `cases` view under it, is read once). These two repeat the period's
-- bounds as plain expressions (edit them with `period`): a filter on a
-- joined `period` becomes a nested-loop join instead of a filter in the scan.
case_ratings AS (
    SELECT e.case_id,
           COUNT(*) AS ratings_n,
           SUM(CASE WHEN e.rating >= 3 THEN 1 ELSE 0 END) AS good_n
    FROM events e
    WHERE e.type = 'evaluated'
      AND e.occurred_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
      AND e.occurred_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
    GROUP BY e.case_id
),
-- A card counts in the period of its firing record unless a retraction
-- record follows (the `alerts` view's `raised_date` and `retracted`, read
-- from the records directly: grouping every record by alert first costs
-- more than the rest of the report).
case_cards AS (
    SELECT case_id,
           COUNT(*) AS cards_n,
           SUM(CASE WHEN level = 'red' THEN 1 ELSE 0 END) AS red_alerts,
           SUM(CASE WHEN level = 'yellow' THEN 1 ELSE 0 END) AS yellow_alerts
    FROM (SELECT DISTINCT f.alert_id, f.case_id, f.level
          FROM alert_records f
          WHERE f.state = 'firing'
            AND f.at_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
            AND f.at_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
            AND NOT EXISTS (SELECT 1 FROM alert_records r WHERE r.state = 'retracted' AND r.alert_id = f.alert_id)) cards
    GROUP BY case_id
),
flags AS (
    SELECT s.department, s.status, s.kind, s.on_time, s.early, s.limit_days, s.used_days, s.rating,
           (s.accepted_date >= start_date AND s.accepted_date < end_date) AS in_intake,
           (s.status = 'completed' AND s.completed_date >= start_date AND s.completed_date < end_date) AS in_completion,
           -- open at 00:00 of the first day after the period, due before that day
           (s.accepted_date < end_date AND (s.closed_date IS NULL OR s.closed_date >= end_date)
            AND s.due_date < end_date) AS in_overdue_open,
           (s.completed_date = s.accepted_date) AS onsite,
           COALESCE(r.ratings_n, 0) AS ratings_n,
           COALESCE(r.good_n, 0) AS good_n,
           COALESCE(k.cards_n, 0) AS cards_n,
           COALESCE(k.red_alerts, 0) AS red_alerts,
           COALESCE(k.yellow_alerts, 0) AS yellow_alerts,
           (s.kind IS NULL AND s.item_code IS NOT NULL) AS unlisted
    -- The small per-case tables on the left: a hash join keeps its left
    -- side in memory and streams the right one through it.
    FROM case_cards k
    RIGHT JOIN (case_ratings r RIGHT JOIN (scope s CROSS JOIN period) ON r.case_id = s.case_id)
           ON k.case_id = s.case_id
),
joint_late AS (
    SELECT s.department, COUNT(*) AS joint_delays
    FROM scope s
    JOIN (SELECT case_id, due_date, late_departments FROM cases WHERE late_sub_cases > 0) p
      ON p.case_id = s.parent_case_id
    WHERE p.due_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
      AND p.due_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
      AND (s.closed_date > p.due_date
           OR (s.closed_date IS NULL
               AND strpos(',' || p.late_departments || ',', ',' || s.department || ',') > 0))
    GROUP BY s.department
),
-- Every department with activity in the period.
case_figures AS (
    SELECT department,
           SUM(CASE WHEN in_intake THEN 1 ELSE 0 END) AS accepted,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' THEN 1 ELSE 0 END) AS accepted_kept,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' AND kind = 'immediate' THEN 1 ELSE 0 END) AS immediate_kept,
           SUM(CASE WHEN in_completion THEN 1 ELSE 0 END) AS completed,
           SUM(CASE WHEN in_completion AND on_time THEN 1 ELSE 0 END) AS on_time_n,
           SUM(CASE WHEN in_completion AND limit_days >= 1 THEN 1 ELSE 0 END) AS limited_n,
           SUM(CASE WHEN in_completion AND early THEN 1 ELSE 0 END) AS early_n,
           SUM(CASE WHEN in_completion AND onsite THEN 1 ELSE 0 END) AS onsite_n,
           SUM(CASE WHEN in_completion AND used_days <= 10 THEN 1 ELSE 0 END) AS within_10_n,
           AVG(CASE WHEN in_completion THEN CAST(used_days AS DOUBLE) END) AS avg_used_days,
           SUM(CASE WHEN in_completion AND rating IS NOT NULL THEN 1 ELSE 0 END) AS rated_n,
           SUM(CASE WHEN in_overdue_open THEN 1 ELSE 0 END) AS overdue_open,
           SUM(ratings_n) AS ratings_n,
           SUM(good_n) AS good_n,
           SUM(red_alerts) AS red_alerts,
           SUM(yellow_alerts) AS yellow_alerts,
           SUM(CASE WHEN in_intake AND unlisted THEN 1 ELSE 0 END) AS unlisted_cases
    FROM flags
    GROUP BY department
    HAVING SUM(CASE WHEN in_intake OR in_completion OR in_overdue_open OR ratings_n > 0 OR cards_n > 0
                    THEN 1 ELSE 0 END) > 0
),
compression AS (
    SELECT department,
           1.0 - CAST(SUM(promised_days) AS DOUBLE) / CAST(SUM(statutory_days) AS DOUBLE) AS compression_rate
    FROM items
    WHERE statutory_days > 0
    GROUP BY department
),
figures AS (
    SELECT c.department,
           c.accepted,
           c.completed,
           CAST(c.on_time_n AS DOUBLE) / NULLIF(c.completed, 0) AS on_time_rate,
           CAST(c.early_n AS DOUBLE) / NULLIF(c.limited_n, 0) AS early_rate,
           CAST(c.onsite_n AS DOUBLE) / NULLIF(c.completed, 0) AS onsite_rate,
           CAST(c.immediate_kept AS DOUBLE) / NULLIF(c.accepted_kept, 0) AS immediate_share,
           CAST(c.within_10_n AS DOUBLE) / NULLIF(c.completed, 0) AS within_10_days_rate,
           c.avg_used_days,
           c.overdue_open,
           p.compression_rate,
           CAST(c.rated_n AS DOUBLE) / NULLIF(c.completed, 0) AS evaluation_rate,
           CAST(c.good_n AS DOUBLE) / NULLIF(c.ratings_n, 0) AS good_rating_rate,
           c.red_alerts,
           c.yellow_alerts,
           c.unlisted_cases,
           COALESCE(j.joint_delays, 0) AS joint_delays
    FROM case_figures c
    LEFT JOIN compression p ON p.department = c.department
    LEFT JOIN joint_late j ON j.department = c.department
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
       RANK() OVER (ORDER BY ROUND(score, 4) DESC) AS rank,
       unlisted_cases, joint_delays
FROM scored
ORDER BY rank, department
