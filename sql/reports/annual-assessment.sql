-- 年终考核 · Annual assessment
--
-- For the year $year ('YYYY'), over the cases of region $region and every
-- region below it ('' for all regions): one row per department, then one
-- per window (department and window), each with the figures of the year,
-- the mean of its monthly scores over the months it had completions, the
-- deductions of the year, its annual score, and
--   - for a department, its grade (等次): 优秀 ≥ 90, 良好 ≥ 80, 合格 ≥ 60,
--     else 不合格, and its rank among the departments;
--   - for a window, its rank among the windows, and 优秀窗口 for the top
--     $top (ties at the last place all get it: RANK() ≤ $top).
--
-- A monthly score is the monthly briefing's weighted score before anything
-- is deducted (a NULL rate counts 0); the annual score is their mean, less
-- the year's deductions (2 per upheld complaint, 1 per overdue notice, 1
-- per deducted point), floored at 0 — each deduction is taken off once, in the year.
-- A unit with no completion in the year has no annual score, grade or rank.
-- A window's deductions are those that name it; a department's all of its.
-- Weights, deductions and cut-offs are the numbers below: edit them here.
WITH
scope AS (
    SELECT c.*
    FROM cases c
    WHERE CAST($region AS VARCHAR) = ''
       OR c.region = CAST($region AS VARCHAR)
       OR c.region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR))
),
-- Each case counts for its department (w = '') and, when it names one,
-- for its window (w = the window).
units AS (
    SELECT 'department' AS unit, s.department, '' AS w, s.case_id, s.status, s.accepted_date, s.completed_date,
           s.on_time, s.early, s.limit_days, s.rating, s.channel_accepted, s.channel_completed
    FROM scope s
    UNION ALL
    SELECT 'window' AS unit, s.department, s."window" AS w, s.case_id, s.status, s.accepted_date, s.completed_date,
           s.on_time, s.early, s.limit_days, s.rating, s.channel_accepted, s.channel_completed
    FROM scope s
    WHERE s."window" IS NOT NULL
),
flags AS (
    SELECT u.*,
           (u.accepted_date >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE)
            AND u.accepted_date < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)) AS in_intake,
           (u.status = 'completed'
            AND u.completed_date >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE)
            AND u.completed_date < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)) AS in_completion
    FROM units u
),
-- Completions by month.
monthly AS (
    SELECT unit, department, w, CAST(date_trunc('month', completed_date) AS DATE) AS m,
           COUNT(*) AS completed,
           SUM(CASE WHEN on_time THEN 1 ELSE 0 END) AS on_time_n,
           SUM(CASE WHEN limit_days >= 1 THEN 1 ELSE 0 END) AS limited_n,
           SUM(CASE WHEN early THEN 1 ELSE 0 END) AS early_n,
           SUM(CASE WHEN rating IS NOT NULL THEN 1 ELSE 0 END) AS rated_n
    FROM flags
    WHERE in_completion
    GROUP BY unit, department, w, CAST(date_trunc('month', completed_date) AS DATE)
),
-- Ratings given in the year, by month.
ratings_m AS (
    SELECT u.unit, u.department, u.w, CAST(date_trunc('month', e.occurred_date) AS DATE) AS m,
           COUNT(*) AS ratings_n,
           SUM(CASE WHEN e.rating >= 3 THEN 1 ELSE 0 END) AS good_n
    FROM events e
    JOIN units u ON u.case_id = e.case_id
    WHERE e.type = 'evaluated'
      AND e.occurred_date >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE)
      AND e.occurred_date < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)
    GROUP BY u.unit, u.department, u.w, CAST(date_trunc('month', e.occurred_date) AS DATE)
),
-- Cards raised in the year and not retracted, by month.
cards_m AS (
    SELECT u.unit, u.department, u.w, CAST(date_trunc('month', k.at_date) AS DATE) AS m,
           SUM(CASE WHEN k.level = 'red' THEN 1 ELSE 0 END) AS red_alerts,
           SUM(CASE WHEN k.level = 'yellow' THEN 1 ELSE 0 END) AS yellow_alerts
    FROM (SELECT f.alert_id, MIN(f.case_id) AS case_id, MIN(f.level) AS level, MIN(f.at_date) AS at_date
          FROM alert_records f
          WHERE f.state = 'firing'
            AND f.at_date >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE)
            AND f.at_date < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)
            AND NOT EXISTS (SELECT 1 FROM alert_records r WHERE r.state = 'retracted' AND r.alert_id = f.alert_id)
          GROUP BY f.alert_id) k
    JOIN units u ON u.case_id = k.case_id
    GROUP BY u.unit, u.department, u.w, CAST(date_trunc('month', k.at_date) AS DATE)
),
-- The monthly score of every month with completions, before deductions.
month_scores AS (
    SELECT c.unit, c.department, c.w, c.m,
             40 * CAST(c.on_time_n AS DOUBLE) / c.completed
           + 20 * COALESCE(CAST(c.early_n AS DOUBLE) / NULLIF(c.limited_n, 0), 0)
           + 20 * COALESCE(CAST(r.good_n AS DOUBLE) / NULLIF(r.ratings_n, 0), 0)
           + 10 * CAST(c.rated_n AS DOUBLE) / c.completed
           + 10 * GREATEST(0.0, 1.0 - CAST(COALESCE(k.red_alerts, 0) AS DOUBLE) / c.completed) AS score
    FROM monthly c
    LEFT JOIN ratings_m r ON r.unit = c.unit AND r.department = c.department AND r.w = c.w AND r.m = c.m
    LEFT JOIN cards_m k ON k.unit = c.unit AND k.department = c.department AND k.w = c.w AND k.m = c.m
),
months AS (
    SELECT unit, department, w, COUNT(*) AS months_scored, AVG(score) AS mean_monthly_score
    FROM month_scores
    GROUP BY unit, department, w
),
-- The figures of the year.
year_figures AS (
    SELECT unit, department, w,
           SUM(CASE WHEN in_intake THEN 1 ELSE 0 END) AS accepted,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' THEN 1 ELSE 0 END) AS accepted_kept,
           SUM(CASE WHEN in_intake AND status <> 'withdrawn' AND channel_accepted = 'online' THEN 1 ELSE 0 END) AS online_kept,
           SUM(CASE WHEN in_completion THEN 1 ELSE 0 END) AS completed,
           SUM(CASE WHEN in_completion AND on_time THEN 1 ELSE 0 END) AS on_time_n,
           SUM(CASE WHEN in_completion AND limit_days >= 1 THEN 1 ELSE 0 END) AS limited_n,
           SUM(CASE WHEN in_completion AND early THEN 1 ELSE 0 END) AS early_n,
           SUM(CASE WHEN in_completion AND completed_date = accepted_date AND channel_completed = 'window'
                    THEN 1 ELSE 0 END) AS onsite_n,
           SUM(CASE WHEN in_completion AND rating IS NOT NULL THEN 1 ELSE 0 END) AS rated_n
    FROM flags
    GROUP BY unit, department, w
),
ratings_y AS (
    SELECT unit, department, w, SUM(ratings_n) AS ratings_n, SUM(good_n) AS good_n
    FROM ratings_m GROUP BY unit, department, w
),
cards_y AS (
    SELECT unit, department, w, SUM(red_alerts) AS red_alerts, SUM(yellow_alerts) AS yellow_alerts
    FROM cards_m GROUP BY unit, department, w
),
-- The year's deductions (deductions.csv) in the region and below it.
year_deductions AS (
    SELECT department, "window", points
    FROM deductions
    WHERE "date" >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE)
      AND "date" < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)
      AND (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
),
deducted AS (
    SELECT 'department' AS unit, department, '' AS w, SUM(points) AS deducted_points
    FROM year_deductions GROUP BY department
    UNION ALL
    SELECT 'window' AS unit, department, "window" AS w, SUM(points) AS deducted_points
    FROM year_deductions WHERE "window" IS NOT NULL GROUP BY department, "window"
),
-- The year's upheld complaints (效能投诉 answered in the year, 属实 or
-- 部分属实) and overdue notices (督办 whose notice_overdue card fired in the
-- year and was not retracted), per department and per window named.
year_follow_up AS (
    SELECT department, "window", 1 AS upheld, 0 AS late
    FROM complaints
    WHERE answered_date >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) AND answered_date < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)
      AND finding IN ('upheld', 'partly_upheld')
      AND (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
    UNION ALL
    SELECT department, "window", 0 AS upheld, 1 AS late
    FROM (SELECT DISTINCT f.alert_id, f.department, f."window", f.region
          FROM alert_records f
          WHERE f.rule = 'notice_overdue' AND f.state = 'firing'
            AND f.at_date >= CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) AND f.at_date < CAST(CAST(CAST($year AS VARCHAR) || '-01-01' AS DATE) + INTERVAL '1 year' AS DATE)
            AND NOT EXISTS (SELECT 1 FROM alert_records r WHERE r.state = 'retracted' AND r.alert_id = f.alert_id)) c
    WHERE (CAST($region AS VARCHAR) = ''
           OR region = CAST($region AS VARCHAR)
           OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
),
follow_up AS (
    SELECT 'department' AS unit, department, '' AS w, SUM(upheld) AS complaints_upheld, SUM(late) AS notices_overdue
    FROM year_follow_up GROUP BY department
    UNION ALL
    SELECT 'window' AS unit, department, "window" AS w, SUM(upheld) AS complaints_upheld, SUM(late) AS notices_overdue
    FROM year_follow_up WHERE "window" IS NOT NULL GROUP BY department, "window"
),
-- Every unit with something in the year: a case accepted or completed, a
-- rating, a card, a deduction, an upheld complaint, an overdue notice.
keys AS (
    SELECT unit, department, w FROM year_figures WHERE accepted > 0 OR completed > 0
    UNION SELECT unit, department, w FROM ratings_y
    UNION SELECT unit, department, w FROM cards_y
    UNION SELECT unit, department, w FROM deducted
    UNION SELECT unit, department, w FROM follow_up
),
annual AS (
    SELECT k.unit, k.department, k.w,
           COALESCE(mo.months_scored, 0) AS months_scored,
           COALESCE(f.accepted, 0) AS accepted,
           COALESCE(f.completed, 0) AS completed,
           CAST(f.on_time_n AS DOUBLE) / NULLIF(f.completed, 0) AS on_time_rate,
           CAST(f.early_n AS DOUBLE) / NULLIF(f.limited_n, 0) AS early_rate,
           CAST(f.onsite_n AS DOUBLE) / NULLIF(f.completed, 0) AS onsite_rate,
           CAST(f.online_kept AS DOUBLE) / NULLIF(f.accepted_kept, 0) AS online_rate,
           CAST(f.rated_n AS DOUBLE) / NULLIF(f.completed, 0) AS evaluation_rate,
           CAST(ry.good_n AS DOUBLE) / NULLIF(ry.ratings_n, 0) AS good_rating_rate,
           COALESCE(cy.red_alerts, 0) AS red_alerts,
           COALESCE(cy.yellow_alerts, 0) AS yellow_alerts,
           mo.mean_monthly_score,
           COALESCE(x.deducted_points, 0.0) AS deducted_points,
           COALESCE(u.complaints_upheld, 0) AS complaints_upheld,
           COALESCE(u.notices_overdue, 0) AS notices_overdue,
           CASE WHEN mo.mean_monthly_score IS NOT NULL
                THEN GREATEST(0.0, mo.mean_monthly_score
                                   - 2 * COALESCE(u.complaints_upheld, 0)
                                   - 1 * COALESCE(u.notices_overdue, 0)
                                   - 1 * COALESCE(x.deducted_points, 0.0)) END AS annual_score
    FROM keys k
    LEFT JOIN year_figures f ON f.unit = k.unit AND f.department = k.department AND f.w = k.w
    LEFT JOIN months mo ON mo.unit = k.unit AND mo.department = k.department AND mo.w = k.w
    LEFT JOIN ratings_y ry ON ry.unit = k.unit AND ry.department = k.department AND ry.w = k.w
    LEFT JOIN cards_y cy ON cy.unit = k.unit AND cy.department = k.department AND cy.w = k.w
    LEFT JOIN deducted x ON x.unit = k.unit AND x.department = k.department AND x.w = k.w
    LEFT JOIN follow_up u ON u.unit = k.unit AND u.department = k.department AND u.w = k.w
),
ranked AS (
    SELECT a.*,
           CASE WHEN a.annual_score IS NULL THEN NULL
                ELSE RANK() OVER (PARTITION BY a.unit ORDER BY ROUND(a.annual_score, 4) DESC NULLS LAST) END AS rank
    FROM annual a
)
SELECT CAST($region AS VARCHAR) AS region,
       CAST($year AS VARCHAR) AS year,
       r.unit,
       r.department,
       COALESCE(d.name, r.department) AS department_name,
       NULLIF(r.w, '') AS "window",
       r.months_scored, r.accepted, r.completed, r.on_time_rate, r.early_rate, r.onsite_rate, r.online_rate,
       r.evaluation_rate, r.good_rating_rate, r.red_alerts, r.yellow_alerts,
       r.mean_monthly_score, r.deducted_points, r.annual_score,
       CASE WHEN r.unit <> 'department' OR r.annual_score IS NULL THEN NULL
            WHEN ROUND(r.annual_score, 4) >= 90 THEN '优秀'
            WHEN ROUND(r.annual_score, 4) >= 80 THEN '良好'
            WHEN ROUND(r.annual_score, 4) >= 60 THEN '合格'
            ELSE '不合格' END AS grade,
       r.rank,
       CASE WHEN r.unit = 'window' AND r.rank <= CAST($top AS BIGINT) THEN '优秀窗口' END AS honour,
       r.complaints_upheld, r.notices_overdue
FROM ranked r
LEFT JOIN departments d ON d.code = r.department
ORDER BY CASE WHEN r.unit = 'department' THEN 0 ELSE 1 END, r.rank NULLS LAST, r.department, r.w
