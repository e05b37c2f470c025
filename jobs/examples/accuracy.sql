-- Exact-match accuracy per task of run 'eval' (a job without a result counts as wrong).
WITH scored AS (
  SELECT json_extract(j.metadata, '$.task') AS task,
         coalesce(r.output = json_extract(j.metadata, '$.expected'), 0) AS correct
  FROM jobs AS j
  JOIN runs AS u ON u.run_id = j.run_id
  LEFT JOIN results_text AS r ON r.job_id = j.job_id AND r.sample = 0
  WHERE u.name = 'eval'
)
SELECT task, count(*) AS prompts, sum(correct) AS correct,
       round(100.0 * avg(correct), 2) AS accuracy
FROM scored GROUP BY task
UNION ALL
SELECT 'overall', count(*), sum(correct), round(100.0 * avg(correct), 2) FROM scored;
