-- 窗口月简报 · Window briefing
--
-- The monthly briefing with one row per (department, window), ranked among
-- windows: over the cases of region $region and every region below it (''
-- for all regions) that name a window, for the calendar month $month
-- ('YYYY-MM'). Cases without a window are in no row here (they are in the
-- department's row of the monthly briefing). A deduction counts for a
-- window when it names that department and window; deductions without a
-- window count for the department only (monthly briefing). Catalogue
-- figures are the department's.
-- Completion figures count cases by the date they were completed, intake
-- figures by the date they were accepted; withdrawn cases count in no rate;
-- a rate with a zero denominator is NULL; rates are fractions 0–1.
-- Departments are named by `departments` (departments.csv) beside their
-- codes; a code it does not name shows as itself.
--
-- The score's weights and what it deducts are the numbers in the `scored`
-- step below: edit them here (this file is read at run time; no rebuild).
WITH
period AS (
    SELECT CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AS start_date,
           CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE) AS end_date
),
scope AS (
    SELECT c.*
    FROM cases c
    WHERE c."window" IS NOT NULL
      AND (CAST($region AS VARCHAR) = ''
           OR c.region = CAST($region AS VARCHAR)
           OR c.region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
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
    SELECT s.department, s."window", s.status, s.kind, s.on_time, s.early, s.limit_days, s.used_days, s.rating,
           (s.accepted_date >= start_date AND s.accepted_date < end_date) AS in_intake,
           (s.status = 'completed' AND s.completed_date >= start_date AND s.completed_date < end_date) AS in_completion,
           -- open at 00:00 of the first day after the period, due before that day
           (s.accepted_date < end_date AND (s.closed_date IS NULL OR s.closed_date >= end_date)
            AND s.due_date < end_date) AS in_overdue_open,
           -- 现场办结: completed at the window on the day it was accepted
           (s.completed_date = s.accepted_date AND s.channel_completed = 'window') AS onsite,
           (s.channel_accepted = 'online') AS online,
           COALESCE(r.ratings_n, 0) AS ratings_n,
           COALESCE(r.good_n, 0) AS good_n,
           COALESCE(k.cards_n, 0) AS cards_n,
           COALESCE(k.red_alerts, 0) AS red_alerts,
           COALESCE(k.yellow_alerts, 0) AS yellow_alerts
    -- The small per-case tables on the left: a hash join keeps its left
    -- side in memory and streams the right one through it.
    FROM case_cards k
    RIGHT JOIN (case_ratings r RIGHT JOIN (scope s CROSS JOIN period) ON r.case_id = s.case_id)
           ON k.case_id = s.case_id
),
-- Every window with activity in the period.
case_figures AS (
    SELECT department, "window",
           SUM(CASE WHEN in_intake THEN 1 ELSE 0 END) AS accepted,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' THEN 1 ELSE 0 END) AS accepted_kept,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' AND kind = 'immediate' THEN 1 ELSE 0 END) AS immediate_kept,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' AND online THEN 1 ELSE 0 END) AS online_kept,
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
           SUM(yellow_alerts) AS yellow_alerts
    FROM flags
    GROUP BY department, "window"
    HAVING SUM(CASE WHEN in_intake OR in_completion OR in_overdue_open OR ratings_n > 0 OR cards_n > 0
                    THEN 1 ELSE 0 END) > 0
),
-- The performance office's deductions (deductions.csv) dated in the
-- period, in the region and every region below it.
deducted AS (
    SELECT department, "window", SUM(points) AS deducted_points
    FROM deductions
    WHERE "window" IS NOT NULL
      AND "date" >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
      AND "date" < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
      AND (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
    GROUP BY department, "window"
),
-- Complaints (效能投诉) naming a window: filed in the period; answered in
-- the period, upheld (属实 or 部分属实), and by their due date.
complaint_figures AS (
    SELECT department, "window",
           SUM(CASE WHEN filed_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AND filed_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE) THEN 1 ELSE 0 END) AS complaints,
           SUM(CASE WHEN answered_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AND answered_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE) THEN 1 ELSE 0 END) AS complaints_answered,
           SUM(CASE WHEN answered_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AND answered_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
                     AND finding IN ('upheld', 'partly_upheld') THEN 1 ELSE 0 END) AS complaints_upheld,
           SUM(CASE WHEN answered_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AND answered_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE) AND on_time THEN 1 ELSE 0 END) AS complaints_on_time
    FROM complaints
    WHERE "window" IS NOT NULL AND (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
    GROUP BY department, "window"
),
-- Notices (督办) on cases of a window: issued in the period; their
-- notice_overdue cards fired in the period and not retracted.
notice_figures AS (
    SELECT department, "window", SUM(issued) AS notices, SUM(late) AS notices_overdue
    FROM (SELECT department, "window", 1 AS issued, 0 AS late
          FROM notices
          WHERE "window" IS NOT NULL AND issued_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AND issued_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE) AND (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
          UNION ALL
          SELECT department, "window", 0 AS issued, 1 AS late
          FROM (SELECT DISTINCT f.alert_id, f.department, f."window", f.region
                FROM alert_records f
                WHERE f.rule = 'notice_overdue' AND f.state = 'firing' AND f."window" IS NOT NULL
                  AND f.at_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE) AND f.at_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
                  AND NOT EXISTS (SELECT 1 FROM alert_records r
                                  WHERE r.state = 'retracted' AND r.alert_id = f.alert_id)) cards
          WHERE (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))) x
    GROUP BY department, "window"
),
-- Every window with cases, deductions, complaints or notices in the period.
active AS (
    SELECT department, "window" FROM case_figures
    UNION SELECT department, "window" FROM deducted
    UNION SELECT department, "window" FROM complaint_figures WHERE complaints + complaints_answered > 0
    UNION SELECT department, "window" FROM notice_figures
),
figures AS (
    SELECT a.department,
           a."window",
           COALESCE(c.accepted, 0) AS accepted,
           COALESCE(c.completed, 0) AS completed,
           CAST(c.on_time_n AS DOUBLE) / NULLIF(c.completed, 0) AS on_time_rate,
           CAST(c.early_n AS DOUBLE) / NULLIF(c.limited_n, 0) AS early_rate,
           CAST(c.onsite_n AS DOUBLE) / NULLIF(c.completed, 0) AS onsite_rate,
           CAST(c.online_kept AS DOUBLE) / NULLIF(c.accepted_kept, 0) AS online_rate,
           CAST(c.immediate_kept AS DOUBLE) / NULLIF(c.accepted_kept, 0) AS immediate_share,
           CAST(c.within_10_n AS DOUBLE) / NULLIF(c.completed, 0) AS within_10_days_rate,
           c.avg_used_days,
           COALESCE(c.overdue_open, 0) AS overdue_open,
           CAST(c.rated_n AS DOUBLE) / NULLIF(c.completed, 0) AS evaluation_rate,
           CAST(c.good_n AS DOUBLE) / NULLIF(c.ratings_n, 0) AS good_rating_rate,
           COALESCE(c.red_alerts, 0) AS red_alerts,
           COALESCE(c.yellow_alerts, 0) AS yellow_alerts,
           COALESCE(x.deducted_points, 0.0) AS deducted_points,
           COALESCE(q.complaints, 0) AS complaints,
           COALESCE(q.complaints_upheld, 0) AS complaints_upheld,
           CAST(q.complaints_on_time AS DOUBLE) / NULLIF(q.complaints_answered, 0) AS complaint_on_time_rate,
           COALESCE(n.notices, 0) AS notices,
           COALESCE(n.notices_overdue, 0) AS notices_overdue
    FROM active a
    LEFT JOIN case_figures c ON c.department = a.department AND c."window" = a."window"
    LEFT JOIN deducted x ON x.department = a.department AND x."window" = a."window"
    LEFT JOIN complaint_figures q ON q.department = a.department AND q."window" = a."window"
    LEFT JOIN notice_figures n ON n.department = a.department AND n."window" = a."window"
),
-- Catalogue figures: by department only, whatever the region and period.
catalogue AS (
    SELECT department,
           1.0 - CAST(SUM(CASE WHEN statutory_days > 0 THEN promised_days END) AS DOUBLE)
               / CAST(SUM(CASE WHEN statutory_days > 0 THEN statutory_days END) AS DOUBLE) AS compression_rate,
           CAST(SUM(CASE WHEN kind = 'immediate' THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS immediate_item_share,
           CAST(SUM(CASE WHEN in_hall THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS in_hall_item_share
    FROM items
    GROUP BY department
),
-- The score: the weights (a NULL rate counts 0), less what is deducted —
-- 2 per upheld complaint, 1 per overdue notice and 1 per deducted point —
-- floored at 0.
scored AS (
    SELECT f.*,
           p.immediate_item_share,
           p.in_hall_item_share,
           p.compression_rate,
           GREATEST(0.0,
                 40 * COALESCE(f.on_time_rate, 0)
               + 20 * COALESCE(f.early_rate, 0)
               + 20 * COALESCE(f.good_rating_rate, 0)
               + 10 * COALESCE(f.evaluation_rate, 0)
               + CASE WHEN f.completed = 0 THEN 10
                      ELSE 10 * GREATEST(0.0, 1.0 - CAST(f.red_alerts AS DOUBLE) / f.completed) END
               - 2 * f.complaints_upheld
               - 1 * f.notices_overdue
               - 1 * f.deducted_points) AS score
    FROM figures f
    LEFT JOIN catalogue p ON p.department = f.department
)
SELECT CAST($region AS VARCHAR) AS region,
       s.department, COALESCE(d.name, s.department) AS department_name, s."window",
       s.accepted, s.completed, s.on_time_rate, s.early_rate, s.onsite_rate, s.online_rate, s.immediate_share,
       s.immediate_item_share, s.in_hall_item_share, s.within_10_days_rate, s.avg_used_days, s.overdue_open,
       s.compression_rate, s.evaluation_rate, s.good_rating_rate, s.red_alerts, s.yellow_alerts,
       s.deducted_points, s.score,
       RANK() OVER (ORDER BY ROUND(s.score, 4) DESC) AS rank,
       s.complaints, s.complaints_upheld, s.complaint_on_time_rate, s.notices, s.notices_overdue
FROM scored s
LEFT JOIN departments d ON d.code = s.department
ORDER BY rank, s.department, s."window"
