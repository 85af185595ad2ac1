package budget

// SetDefaults replaces the policy of keys with none of their own (a
// configuration reload): the next request of every such key, and of every
// key created later, is checked against p. Keys with a policy of their own
// keep it. Spend so far is kept, as with SetPolicy. Nothing is stored: the
// defaults come from the configuration.
func (a *Accounts) SetDefaults(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	a.policyMu.Lock() // not interleaved with a SetPolicy making a key's policy its own
	defer a.policyMu.Unlock()
	a.defaultsMu.Lock()
	defer a.defaultsMu.Unlock()
	a.defaults = p.clone()
	a.limits.rpm.Store(int64(p.RPM))
	a.limits.tpm.Store(int64(p.TPM))
	a.keys.Range(func(id, v any) bool {
		st := v.(*keyState)
		st.mu.Lock()
		defer st.mu.Unlock()
		if !st.explicit {
			st.policy = p.clone()
			if _, sized := a.limits.keys.Load(id); sized {
				// Told the defaults as its own limits (accounts_shared.go).
				a.limits.set(id.(string), p)
			}
		}
		return true
	})
	return nil
}
