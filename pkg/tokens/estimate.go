package tokens

// estimator turns an o200k_base count into an estimate for a tokenizer that
// is not public.
type estimator struct {
	factor float64
}

func (e estimator) scale(n int, _ string) int {
	return int(float64(n)*e.factor + 0.5)
}

var estimators = map[string]estimator{
	EstimateAnthropic: {factor: 1.2},
	EstimateGemini:    {factor: 1.0},
	Estimate:          {factor: 1.1},
}
