-- 工作人员月简报 · Staff briefing (admins only)
--
-- One row per official (`staff` code) over the cases of region $region and
-- every region below it ('' for all regions), for the calendar month $month
-- ('YYYY-MM'). Over the SQL endpoint and HTTP only admins may run it (a
-- reader is refused, and reads `staff` as NULL everywhere).
--
-- accepted: the `accepted` events the official recorded (their `staff`)
--   in the month;
-- completed, on_time_rate: the cases the official handled (`cases.staff`:
--   the staff of the completion, else of the acceptance) completed in the
--   month, and the share of them on time;
-- good_rating_rate: ratings 3–5 / ratings given in the month to those cases;
-- red_alerts, yellow_alerts: cards raised in the month on those cases, not
--   retracted;
-- department, window: where the official worked in the month (several,
--   comma separated, when more than one).
-- Upheld complaints (follow-up.md) about the official's cases come in as
-- `complaints_upheld` when complaints exist.
WITH
scope AS (
    SELECT c.case_id, c.department, c."window", c.status, c.completed_date, c.on_time, c.staff
    FROM cases c
    WHERE CAST($region AS VARCHAR) = ''
       OR c.region = CAST($region AS VARCHAR)
       OR c.region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR))
),
acceptances AS (
    SELECT e.staff, s.department, s."window", COUNT(*) AS accepted
    FROM events e
    JOIN scope s ON s.case_id = e.case_id
    WHERE e.type = 'accepted' AND e.staff IS NOT NULL
      AND e.occurred_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
      AND e.occurred_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
    GROUP BY e.staff, s.department, s."window"
),
completions AS (
    SELECT staff, department, "window",
           COUNT(*) AS completed,
           SUM(CASE WHEN on_time THEN 1 ELSE 0 END) AS on_time_n
    FROM scope
    WHERE staff IS NOT NULL AND status = 'completed'
      AND completed_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
      AND completed_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
    GROUP BY staff, department, "window"
),
ratings AS (
    SELECT s.staff, s.department, s."window",
           COUNT(*) AS ratings_n,
           SUM(CASE WHEN e.rating >= 3 THEN 1 ELSE 0 END) AS good_n
    FROM events e
    JOIN scope s ON s.case_id = e.case_id
    WHERE e.type = 'evaluated' AND s.staff IS NOT NULL
      AND e.occurred_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
      AND e.occurred_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
    GROUP BY s.staff, s.department, s."window"
),
cards AS (
    SELECT s.staff, s.department, s."window",
           SUM(CASE WHEN k.level = 'red' THEN 1 ELSE 0 END) AS red_alerts,
           SUM(CASE WHEN k.level = 'yellow' THEN 1 ELSE 0 END) AS yellow_alerts
    FROM (SELECT DISTINCT f.alert_id, f.case_id, f.level
          FROM alert_records f
          WHERE f.state = 'firing'
            AND f.at_date >= CAST(CAST($month AS VARCHAR) || '-01' AS DATE)
            AND f.at_date < CAST(CAST(CAST($month AS VARCHAR) || '-01' AS DATE) + INTERVAL '1 month' AS DATE)
            AND NOT EXISTS (SELECT 1 FROM alert_records r WHERE r.state = 'retracted' AND r.alert_id = f.alert_id)) k
    JOIN scope s ON s.case_id = k.case_id
    WHERE s.staff IS NOT NULL
    GROUP BY s.staff, s.department, s."window"
),
activity AS (
    SELECT staff, department, "window", accepted, 0 AS completed, 0 AS on_time_n, 0 AS ratings_n, 0 AS good_n,
           0 AS red_alerts, 0 AS yellow_alerts
    FROM acceptances
    UNION ALL
    SELECT staff, department, "window", 0, completed, on_time_n, 0, 0, 0, 0 FROM completions
    UNION ALL
    SELECT staff, department, "window", 0, 0, 0, ratings_n, good_n, 0, 0 FROM ratings
    UNION ALL
    SELECT staff, department, "window", 0, 0, 0, 0, 0, red_alerts, yellow_alerts FROM cards
)
SELECT CAST($region AS VARCHAR) AS region,
       a.staff,
       array_to_string(array_sort(array_agg(DISTINCT a.department)), ',') AS department,
       array_to_string(array_sort(array_agg(DISTINCT COALESCE(d.name, a.department))), '、') AS department_name,
       array_to_string(array_sort(array_agg(DISTINCT a."window")), ',') AS "window",
       SUM(a.accepted) AS accepted,
       SUM(a.completed) AS completed,
       CAST(SUM(a.on_time_n) AS DOUBLE) / NULLIF(SUM(a.completed), 0) AS on_time_rate,
       CAST(SUM(a.good_n) AS DOUBLE) / NULLIF(SUM(a.ratings_n), 0) AS good_rating_rate,
       SUM(a.red_alerts) AS red_alerts,
       SUM(a.yellow_alerts) AS yellow_alerts
FROM activity a
LEFT JOIN departments d ON d.code = a.department
GROUP BY a.staff
ORDER BY department, a.staff
